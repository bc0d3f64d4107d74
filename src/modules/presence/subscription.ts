/**
 * The presence subscription state machine, as a pure function: what a subscription
 * stanza (subscribe, subscribed, unsubscribe, unsubscribed), sent by the user (outbound)
 * or to the user (inbound), does to the user's roster item for the contact, and which
 * stanzas it sends. No server, no store: the presence module reads the item, asks
 * `subscriptionTransition`, stores the new state and runs the effects, in order.
 * References: RFC 6121 §3.1 (requesting: §3.1.2 outbound, §3.1.3 inbound and the
 * automatic reply, §3.1.5 approving, §3.1.6 the approval arrives), §3.2 (cancelling a
 * subscription from the contact), §3.3 (unsubscribing), §3.4 (pre-approval), Appendix A
 * (the states, A.2 outbound and A.3 inbound tables).
 *
 * The item's state is RFC 6121's: `subscription` with the two pending flags ("None +
 * Pending Out" is none with askOut), plus the pre-approval flag and whether the item is
 * in the roster at all (an inbound request from a stranger is kept as a hidden item).
 *
 * Two choices where Appendix A leaves room:
 * - An outbound unsubscribed is routed in every state (A.2.4 routes it only from "From"
 *   or a pending-in state): a contact's server that still believes in a subscription the
 *   user's side lost gets back in step, and one that has none ignores it (A.3.4).
 * - An outbound subscribe and unsubscribe store the item even when its state does not
 *   change (the roster's version moves on, as for every write): what A.2.1 and A.2.2 call
 *   "no state change" is not a reason to skip the request.
 */

/** The subscription of a roster item (RFC 6121 §2.1.2.5). */
export type SubscriptionValue = 'none' | 'to' | 'from' | 'both';

/** The four subscription stanza types (RFC 6121 §3). */
export type SubscriptionType = 'subscribe' | 'subscribed' | 'unsubscribe' | 'unsubscribed';

/** Sent by the user's client to the contact, or received for the user from the contact. */
export type SubscriptionDirection = 'outbound' | 'inbound';

/** What the state machine reads and writes of a roster item. */
export interface SubscriptionState {
  subscription: SubscriptionValue;
  /** Pending out: the user asked the contact and has no answer yet. */
  askOut: boolean;
  /** Pending in: the contact asked the user and has no answer yet. */
  askIn: boolean;
  /** The user pre-approved a subscription request from the contact (RFC 6121 §3.4). */
  approved: boolean;
  /** Shown in the roster (false: only a stored inbound request). */
  inRoster: boolean;
}

/**
 * A stanza to send, in the order given (user: the roster's owner; contact: the other side):
 * - `route`: the user's stanza goes on to the contact, from the user's bare JID (outbound).
 * - `deliver`: the contact's stanza goes to the user's available resources (inbound).
 * - `store-request`: the contact's request is kept with the item (given to the user at
 *   login, RFC 6121 §3.1.3) and delivered to the user's available resources (inbound).
 * - `reply-subscribed`: the server approves for the user: `subscribed` to the contact.
 * - `presence-to-contact`: the current presence of the user's available resources, to the contact.
 * - `unavailable-to-contact`: unavailable presence from each of the user's available resources, to the contact.
 * - `contact-presence`: the current presence of the contact's available resources, to the user's.
 * - `contact-unavailable`: unavailable presence from the contact's available resources, to the user's.
 */
export type SubscriptionEffect =
  | 'route'
  | 'deliver'
  | 'store-request'
  | 'reply-subscribed'
  | 'presence-to-contact'
  | 'unavailable-to-contact'
  | 'contact-presence'
  | 'contact-unavailable';

/** What one subscription stanza does. */
export interface SubscriptionTransition {
  /** The item's state after the stanza; null: no item (none was there, or it is removed). */
  readonly next: SubscriptionState | null;
  /** The item is written (created, changed, removed); false: the store is not touched. */
  readonly write: boolean;
  readonly effects: readonly SubscriptionEffect[];
}

/** The state of an item made for a contact the user had none for. */
export const NO_SUBSCRIPTION: Readonly<SubscriptionState> = Object.freeze({ subscription: 'none', askOut: false, askIn: false, approved: false, inRoster: false });

/** The user receives the contact's presence (subscription to or both). */
export function hasTo(s: SubscriptionValue): boolean {
  return s === 'to' || s === 'both';
}

/** The contact receives the user's presence (subscription from or both). */
export function hasFrom(s: SubscriptionValue): boolean {
  return s === 'from' || s === 'both';
}

/**
 * Whether what a stanza does (written or not, effects) depends on the item's state: not
 * for an outbound subscribe or unsubscribe (A.2.1, A.2.2: routed and stored in every
 * state), for which the module does not read the item first.
 */
export function dependsOnState(direction: SubscriptionDirection, type: SubscriptionType): boolean {
  return direction === 'inbound' || type === 'subscribed' || type === 'unsubscribed';
}

const UNTOUCHED = (state: SubscriptionState | null): SubscriptionTransition => ({ next: state, write: false, effects: [] });

/**
 * What the subscription stanza `type`, in `direction`, does to the user's item for the
 * contact (`state`, null when the user has none). Pure: `state` is not changed.
 *
 * @example
 * // Romeo asks Juliet (outbound subscribe, no item yet): routed, "None + Pending Out".
 * subscriptionTransition(null, 'outbound', 'subscribe');
 * // → { next: { subscription: 'none', askOut: true, inRoster: true, … }, write: true, effects: ['route'] }
 */
export function subscriptionTransition(state: SubscriptionState | null, direction: SubscriptionDirection, type: SubscriptionType): SubscriptionTransition {
  return direction === 'outbound' ? outbound(state, type) : inbound(state, type);
}

/** RFC 6121 §3.1.2, §3.1.5, §3.2.1, §3.3.1, §3.4 and A.2: the user sends it. */
function outbound(state: SubscriptionState | null, type: SubscriptionType): SubscriptionTransition {
  const s = state ?? NO_SUBSCRIPTION;
  switch (type) {
    case 'subscribe':
      // A.2.1: routed in every state; pending out unless already subscribed to the contact.
      return { next: { ...s, inRoster: true, askOut: hasTo(s.subscription) ? s.askOut : true }, write: true, effects: ['route'] };
    case 'subscribed':
      if (s.askIn) {
        // §3.1.5: the user approves the contact's request; the contact gets the user's presence.
        return {
          next: { ...s, subscription: hasTo(s.subscription) ? 'both' : 'from', askIn: false, inRoster: true },
          write: true,
          effects: ['route', 'presence-to-contact'],
        };
      }
      // §3.4: no request yet: a pre-approval, kept and not routed. Already approved: nothing.
      if (state === null || !hasFrom(s.subscription)) return { next: { ...s, approved: true, inRoster: true }, write: true, effects: [] };
      return UNTOUCHED(state);
    case 'unsubscribe':
      // A.2.2: routed in every state; the user no longer receives the contact's presence.
      if (state === null) return { next: null, write: true, effects: ['route'] };
      return { next: { ...s, subscription: s.subscription === 'both' ? 'from' : s.subscription === 'to' ? 'none' : s.subscription, askOut: false }, write: true, effects: ['route'] };
    case 'unsubscribed': {
      // §3.2.1: the user cancels (or declines) the contact's subscription, and any
      // pre-approval; the contact is told the user went offline. Routed in every state.
      if (state === null) return { next: null, write: false, effects: ['route'] };
      const next: SubscriptionState = { ...s, subscription: s.subscription === 'both' ? 'to' : s.subscription === 'from' ? 'none' : s.subscription, askIn: false, approved: false };
      // A stored request from someone not in the roster simply goes away.
      return { next: next.inRoster ? next : null, write: true, effects: hasFrom(s.subscription) ? ['route', 'unavailable-to-contact'] : ['route'] };
    }
  }
}

/** RFC 6121 §3.1.3, §3.1.6, §3.2.3, §3.3.3, §3.4 and A.3: the contact sends it to the user. */
function inbound(state: SubscriptionState | null, type: SubscriptionType): SubscriptionTransition {
  const s = state ?? NO_SUBSCRIPTION;
  switch (type) {
    case 'subscribe':
      // §3.1.3: already approved: the server answers for the user, and nothing is delivered.
      if (hasFrom(s.subscription)) return { next: state, write: false, effects: ['reply-subscribed'] };
      // §3.4: pre-approved: approved now, without asking the user.
      if (s.approved) {
        return {
          next: { ...s, subscription: s.subscription === 'to' ? 'both' : 'from', approved: false },
          write: true,
          effects: ['reply-subscribed', 'presence-to-contact'],
        };
      }
      // A.3.1: a request already pending is neither stored again nor delivered again.
      if (s.askIn) return UNTOUCHED(state);
      return { next: { ...s, askIn: true }, write: true, effects: ['store-request'] };
    case 'subscribed':
      // §3.1.6: only an answer to the user's own request counts; anything else is ignored.
      if (state === null || !s.askOut) return UNTOUCHED(state);
      return { next: { ...s, subscription: hasFrom(s.subscription) ? 'both' : 'to', askOut: false }, write: true, effects: ['deliver', 'contact-presence'] };
    case 'unsubscribe': {
      // §3.3.3: the contact no longer wants the user's presence (or withdraws its request).
      if (state === null || (!hasFrom(s.subscription) && !s.askIn)) return UNTOUCHED(state);
      const next: SubscriptionState = { ...s, subscription: s.subscription === 'both' ? 'to' : s.subscription === 'from' ? 'none' : s.subscription, askIn: false };
      return { next: next.inRoster ? next : null, write: true, effects: hasFrom(s.subscription) ? ['deliver', 'unavailable-to-contact'] : ['deliver'] };
    }
    case 'unsubscribed':
      // §3.2.3: the contact cancelled (or declined) the user's subscription to it.
      if (state === null || (!hasTo(s.subscription) && !s.askOut)) return UNTOUCHED(state);
      return {
        next: { ...s, subscription: s.subscription === 'both' ? 'from' : s.subscription === 'to' ? 'none' : s.subscription, askOut: false },
        write: true,
        effects: hasTo(s.subscription) ? ['deliver', 'contact-unavailable'] : ['deliver'],
      };
  }
}
