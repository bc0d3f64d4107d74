/** The vcard module's storage interface (XEP-0054), with the XEP-0153 photo hash. */
export interface StoredVcard {
  /** The `<vCard xmlns='vcard-temp'/>` element as XML. */
  xml: string;
  /** Lower-case hex SHA-1 of the photo's binary data; '' when there is no photo. */
  photoHash: string;
}

export interface VcardStore {
  get(host: string, username: string): Promise<StoredVcard | null>;
  /** The photo hash alone ('' without photo), or null when the user has no vCard. */
  photoHash(host: string, username: string): Promise<string | null>;
  /** Stores (replaces) the user's vCard. */
  set(host: string, username: string, vcard: StoredVcard): Promise<void>;
  remove(host: string, username: string): Promise<void>;
}
