// Reference peer for the agentiam benchmark: node-oidc-provider 9.x issuing
// client-credentials access tokens as ES256-signed JWTs (RFC 9068) on 127.0.0.1.
//
// Usage: node server.mjs [--port 8801]
// Environment: PEER_PORT (default 8801), PEER_CLIENT_ID (default "bench-client"),
// PEER_CLIENT_SECRET (default "bench-secret").
//
// The process prints one line "listening <issuer>" on stdout once it accepts
// connections, so a caller can wait for it.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: { port: { type: 'string' } },
});

const port = Number.parseInt(args.port ?? process.env.PEER_PORT ?? '8801', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`invalid port ${args.port ?? process.env.PEER_PORT}: expected 1-65535`);
  process.exit(2);
}

const host = '127.0.0.1';
const issuer = `http://${host}:${port}`;
const clientId = process.env.PEER_CLIENT_ID ?? 'bench-client';
const clientSecret = process.env.PEER_CLIENT_SECRET ?? 'bench-secret';

// The one resource server that every client-credentials token is issued for.
// The provider issues a client-credentials token as a JWT only when the resource
// server info from the resourceIndicators feature sets accessTokenFormat 'jwt'.
// Without a resource server the token is opaque.
const resource = 'https://api.bench.example';
const scope = 'api:read';

// A fresh P-256 key per process: the benchmark needs no stable keys.
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  alg: 'ES256',
  use: 'sig',
  kid: randomBytes(8).toString('hex'),
};

const configuration = {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope,
      // The provider checks each client's ID token algorithm against the key set,
      // and its default (RS256) has no key here.
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [signingJwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', scope],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resourceIndicator) => {
        if (resourceIndicator !== resource) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope,
          audience: resource,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (_ctx, error) => {
  console.error('server_error', error);
});

const server = createServer(provider.callback());
server.keepAliveTimeout = 65_000;
server.listen(port, host, () => {
  console.log(`listening ${issuer}`);
});

function shutdown(signal) {
  console.log(`stopping on ${signal}`);
  server.close(() => process.exit(0));
  // Keep-alive connections from a load generator can hold close() open.
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
