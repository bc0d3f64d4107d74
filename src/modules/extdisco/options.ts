/**
 * The `externalServices` section of the config file: this module's options, validated and documented
 * (`parley config docs`) like every other key.
 */
import { duration, int, list, obj, oneOf, optionalStr, str, type Infer } from '../../config/schema-dsl.js';
import type { ModuleOptions } from '../../core/module.js';
import { ConfigError } from '../../support/errors.js';

const schema = list(
  obj(
    {
      type: oneOf(['stun', 'stuns', 'turn', 'turns'] as const, { doc: 'kind of service', default: 'stun' }),
      host: str({ doc: 'host name or address of the service (required)', default: '', minLength: 1 }),
      port: int({ doc: 'port of the service', default: 3478, min: 1, max: 65535 }),
      transport: oneOf(['udp', 'tcp'] as const, { doc: 'transport', default: 'udp' }),
      name: optionalStr({ doc: 'a name to show' }),
      secret: optionalStr({ doc: 'secret shared with the TURN server (coturn `static-auth-secret`): users get time-limited credentials (TURN REST API); unset: no credentials' }),
      ttl: duration({ doc: 'how long computed credentials stay valid', default: '1d', min: '1m', max: '30d' }),
    },
    'an external service',
  ),
  { doc: 'STUN/TURN services listed to the server\'s users (XEP-0215), for voice and video calls', default: [] },
);

export type ExternalServicesOptions = Infer<typeof schema>;

declare module '../../config/schema.js' {
  interface ModuleConfig {
    externalServices: ExternalServicesOptions;
  }
}

export const options: ModuleOptions<ExternalServicesOptions> = {
  key: 'externalServices',
  schema,
  check(value, key) {
    value.forEach((s, i) => {
      if (s.host === '') throw new ConfigError(`${key}[${i}].host`, 'is required');
      if (s.secret !== undefined && s.secret.length < 16) throw new ConfigError(`${key}[${i}].secret`, 'must be at least 16 characters');
    });
  },
};
