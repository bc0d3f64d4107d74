/**
 * The import rules of Parley's parts (../shared/DESIGN.md "Parts", issue 19 point 7),
 * checked by dependency-cruiser: `npm run arch` (over src, loadtest and bench).
 *
 * Type-only imports count (`tsPreCompilationDeps: true`): a part that needs another's
 * types declares a port of its own instead. Tests beside the code (`*.test.ts`) may reach
 * further than the code they test (helpers, other parts' stores): the layering rules
 * look at the code only; the no-circle rule looks at everything.
 *
 * The list of core files that are "the module API" (CORE_MODULE_API) is the present
 * one and meant to shrink as the module context narrows (issue 19 point 3).
 */

/** Our own code, that the layering rules speak about (not node: builtins or packages). */
const OURS = '^(src|loadtest|bench|test)/';
/** Test files beside the code: left out of the layering rules (see above). */
const TESTS = '\\.test\\.ts$';

/** The core files a module may import: the module API. Everything else in src/core is internal. */
const CORE_MODULE_API = [
  'module.ts', // defineModule, ModuleContext and its ports
  'iq-types.ts', // IqScope, IqRequest, IqHandler, Identity
  'hooks.ts', // the typed hook map
  'services.ts', // the typed service map (filled by the modules' api.ts)
  'disco.ts', // disco node handlers (types)
  'session.ts', // the session a module is given
  'message-stages.ts', // the message stage contract (archive, carbons)
  'policy.ts', // the stanza filter contract (privacy)
  'envelope.ts', // the per-stanza envelope the stages get
  'hosts.ts', // the host handler contract (ctx.addHost)
  'auth-port.ts', // AccountsPort (exists, ensure)
];
const coreModuleApi = `^src/core/(${CORE_MODULE_API.map((f) => f.replace(/\./g, '\\.')).join('|')})$`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import circle, type-only imports included (issue 19 point 7).',
      from: {},
      to: { circular: true },
    },
    {
      name: 'xml-imports-nothing-of-ours',
      severity: 'error',
      comment: 'src/xml (parser, element, serializer, escaping) imports nothing of ours beyond itself.',
      from: { path: '^src/xml/', pathNot: TESTS },
      to: { path: OURS, pathNot: '^src/xml/' },
    },
    {
      name: 'xmpp-imports-only-xmpp-and-xml',
      severity: 'error',
      comment: 'src/xmpp (JID, errors, namespaces, SASL) imports only src/xmpp and src/xml.',
      from: { path: '^src/xmpp/', pathNot: TESTS },
      to: { path: OURS, pathNot: '^src/(xmpp|xml)/' },
    },
    {
      name: 'support-imports-nothing-above-it',
      severity: 'error',
      comment: 'src/support (logger, stats, TLS, x509, address lists) imports nothing of ours but itself.',
      from: { path: '^src/support/', pathNot: TESTS },
      to: { path: OURS, pathNot: '^src/support/' },
    },
    {
      name: 'transports-use-c2s-not-core-server',
      severity: 'error',
      comment: 'A transport only frames bytes and hands them to c2s: never core/server (DESIGN.md "How a stanza travels").',
      from: { path: '^src/transports/', pathNot: TESTS },
      to: { path: '^src/core/server\\.ts$' },
    },
    {
      name: 'transports-use-only-c2s-and-below',
      severity: 'error',
      comment: 'Transports may use c2s (and xml, xmpp, support, config); not modules, storage, auth, portal, ops, cli, cluster.',
      from: { path: '^src/transports/', pathNot: TESTS },
      to: { path: '^src/(modules|storage|auth|portal|ops|cli|cluster)/|^src/main\\.ts$' },
    },
    {
      name: 'module-imports-no-other-module',
      severity: 'error',
      comment: "A module never imports another module: it uses a hook or a service, whose contract (types only) is the provider's api.ts.",
      from: { path: '^src/modules/([^/]+)/', pathNot: TESTS },
      to: { path: '^src/modules/', pathNot: ['^src/modules/$1/', '^src/modules/[^/]+/api\\.ts$'] },
    },
    {
      name: 'module-contracts-are-types',
      severity: 'error',
      comment: "Another module's api.ts is imported for its types only (import type): nothing of the other module runs.",
      from: { path: '^src/modules/([^/]+)/', pathNot: TESTS },
      to: { path: '^src/modules/[^/]+/api\\.ts$', pathNot: '^src/modules/$1/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'module-uses-only-the-core-module-api',
      severity: 'error',
      comment: `A module uses the module API of core only (${CORE_MODULE_API.join(', ')}), never core internals (router, server, registry, iq…).`,
      from: { path: '^src/modules/', pathNot: TESTS },
      to: { path: '^src/core/', pathNot: coreModuleApi },
    },
    {
      name: 'module-uses-no-other-part',
      severity: 'error',
      comment: 'A module gets what it needs through its context: not from auth, portal, ops, cli, transports, c2s, cluster or the composition root.',
      from: { path: '^src/modules/', pathNot: TESTS },
      to: { path: '^src/(auth|portal|ops|cli|transports|c2s|cluster)/|^src/main\\.ts$' },
    },
    {
      name: 'loadtest-uses-only-xml-and-xmpp',
      severity: 'error',
      comment: 'The load generator is its own program: it shares only src/xml and src/xmpp with the server.',
      from: { path: '^loadtest/', pathNot: TESTS },
      to: { path: '^(src|bench|test)/', pathNot: '^src/(xml|xmpp)/' },
    },
    {
      name: 'storage-does-not-import-core-or-modules',
      severity: 'error',
      comment: 'Storage sits below the core and the modules: the modules hand it their tables and migrations.',
      from: { path: '^src/storage/', pathNot: TESTS },
      to: { path: '^src/(core|modules)/' },
    },
    {
      name: 'storage-uses-only-support',
      severity: 'error',
      comment: 'Storage may use its drivers and src/support (and config, xml/xmpp helpers); not auth, portal, ops, cli, c2s, transports, cluster.',
      from: { path: '^src/storage/', pathNot: TESTS },
      to: { path: '^src/(auth|portal|ops|cli|c2s|transports|cluster)/|^src/main\\.ts$' },
    },
    {
      name: 'auth-does-not-import-portal-or-core',
      severity: 'error',
      comment: 'auth owns the password-source ports that the portal implements: it imports neither the portal nor the core.',
      from: { path: '^src/auth/', pathNot: TESTS },
      to: { path: '^src/(portal|core|modules|c2s|transports|ops|cli|cluster)/|^src/main\\.ts$' },
    },
    {
      name: 'core-imports-no-outer-part',
      severity: 'error',
      comment: 'The core declares ports for what it needs (auth-port.ts, the cluster view…) instead of importing auth, portal, ops, cli, transports, cluster, c2s or modules.',
      from: { path: '^src/core/', pathNot: TESTS },
      to: { path: '^src/(auth|portal|ops|cli|transports|cluster|c2s|modules)/|^src/main\\.ts$' },
    },
    {
      name: 'cluster-does-not-import-outer-parts',
      severity: 'error',
      comment: 'The cluster port sits beside the core: no modules, transports, portal, ops or cli.',
      from: { path: '^src/cluster/', pathNot: TESTS },
      to: { path: '^src/(modules|transports|portal|ops|cli)/|^src/main\\.ts$' },
    },
    {
      name: 'c2s-uses-xml-xmpp-auth-and-core-ports',
      severity: 'error',
      comment: 'The c2s session uses xml, xmpp, auth and the core; not modules, storage, portal, ops, cli, transports or cluster.',
      from: { path: '^src/c2s/', pathNot: TESTS },
      to: { path: '^src/(modules|storage|portal|ops|cli|transports|cluster)/|^src/main\\.ts$' },
    },
    {
      name: 'nothing-imports-the-cli',
      severity: 'error',
      comment: 'The parley command sits on top: nothing in src imports it.',
      from: { path: '^src/', pathNot: `^src/cli/|${TESTS}` },
      to: { path: '^src/cli/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|web|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.cjs', '.mjs', '.d.ts'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
