/** The small part of net-snmp (no types published) the SNMP agent uses. */
declare module 'net-snmp' {
  import type * as dgram from 'node:dgram';

  export const ObjectType: Record<'Integer' | 'Integer32' | 'OctetString' | 'Counter64' | 'Gauge32' | 'Gauge' | 'TimeTicks' | 'Counter32', number>;
  export const MibProviderType: { Scalar: number; Table: number };
  export const MaxAccess: Record<'not-accessible' | 'read-only' | 'read-write', number>;
  export const SecurityLevel: Record<'noAuthNoPriv' | 'authNoPriv' | 'authPriv', number>;
  export const AuthProtocols: Record<'none' | 'md5' | 'sha' | 'sha224' | 'sha256' | 'sha384' | 'sha512', number>;
  export const PrivProtocols: Record<'none' | 'des' | 'aes' | 'aes256b' | 'aes256r', number>;
  export const AccessControlModelType: { None: number; Simple: number };

  export interface ProviderColumn {
    number: number;
    name: string;
    type: number;
    maxAccess: number;
  }
  export interface Provider {
    name: string;
    type: number;
    oid: string;
    scalarType?: number;
    maxAccess: number;
    tableColumns?: ProviderColumn[];
    tableIndex?: Array<{ columnName: string }>;
  }
  export interface Mib {
    registerProvider(p: Provider): void;
    setScalarValue(name: string, value: unknown): void;
    addTableRow(name: string, row: unknown[]): void;
    setTableSingleCell(name: string, columnNumber: number, rowIndex: unknown[], value: unknown): void;
    deleteTableRow(name: string, rowIndex: unknown[]): void;
  }
  export interface Authorizer {
    addCommunity(c: string): void;
    addUser(u: { name: string; level: number; authProtocol?: number; authKey?: string; privProtocol?: number; privKey?: string }): void;
  }
  export interface Agent {
    getMib(): Mib;
    getAuthorizer(): Authorizer;
    close(cb?: () => void): void;
    getRequest(...a: unknown[]): void;
    getNextRequest(...a: unknown[]): void;
    getBulkRequest(...a: unknown[]): void;
  }
  export function createAgent(
    options: { port: number; address: string | null; transport: 'udp4' | 'udp6'; disableAuthorization?: boolean; dgramModule?: { createSocket(t: string): dgram.Socket } },
    callback: (error: Error | null, data: unknown) => void,
  ): Agent;
  const snmp: {
    ObjectType: typeof ObjectType;
    MibProviderType: typeof MibProviderType;
    MaxAccess: typeof MaxAccess;
    SecurityLevel: typeof SecurityLevel;
    AuthProtocols: typeof AuthProtocols;
    PrivProtocols: typeof PrivProtocols;
    createAgent: typeof createAgent;
  };
  export default snmp;
}
