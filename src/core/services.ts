/**
 * Services that modules offer each other. A module never imports another module: it
 * asks the core for a service by name (`ctx.service('roster')`). The map is empty here:
 * each providing module adds its entry, with the contract's types, in its `api.ts` by
 * declaration merging:
 *
 * @example
 * declare module '../../core/services.js' {
 *   interface Services { roster: RosterService }
 * }
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by declaration merging
export interface Services {}
