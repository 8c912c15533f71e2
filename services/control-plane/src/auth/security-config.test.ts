import { describe, expect, it } from 'vitest';
import { TandemError } from '@tandem/common';
import { loadConfig } from '../config.js';
import { principalOf } from './token-review.js';

/** Security settings from the environment, and the TokenReview → namespace mapping. */

function fails(env: Record<string, string>): TandemError {
  try {
    loadConfig(env);
  } catch (err) {
    return TandemError.from(err);
  }
  throw new Error('expected loadConfig to fail');
}

describe('security config', () => {
  it('is off on loopback by default, and says so', () => {
    const c = loadConfig({});
    expect(c.security).toMatchObject({ authEnabled: false, unauthenticatedOnNetwork: false, metricsRequireAuth: false, redisRunUsers: 'auto' });
    expect(c.security.tls).toBeUndefined();
  });

  it('refuses a non-loopback address without authentication, naming the variable, unless asked for explicitly', () => {
    const e = fails({ TANDEM_HOST: '0.0.0.0' });
    expect(e.fieldViolations[0]?.path).toBe('TANDEM_AUTH_TOKENS_FILE');
    expect(e.message).toContain('TANDEM_AUTH_ALLOW_UNAUTHENTICATED');
    expect(loadConfig({ TANDEM_HOST: '0.0.0.0', TANDEM_AUTH_ALLOW_UNAUTHENTICATED: 'true' }).security.unauthenticatedOnNetwork).toBe(true);
    expect(loadConfig({ TANDEM_HOST: '0.0.0.0', TANDEM_AUTH_TOKENS_FILE: '/etc/tandem/tokens.yaml' }).security.authEnabled).toBe(true);
  });

  it('needs certificate and key together, and TokenReview only with the kubernetes runtime', () => {
    expect(fails({ TANDEM_TLS_CERT_FILE: '/c.pem' }).fieldViolations[0]?.path).toBe('TANDEM_TLS_KEY_FILE');
    expect(fails({ TANDEM_TLS_KEY_FILE: '/k.pem' }).fieldViolations[0]?.path).toBe('TANDEM_TLS_CERT_FILE');
    expect(fails({ TANDEM_AUTH_TOKEN_REVIEW: 'true' }).fieldViolations[0]?.path).toBe('TANDEM_AUTH_TOKEN_REVIEW');
    expect(fails({ TANDEM_REDIS_RUN_USERS: 'sometimes' }).message).toContain('TANDEM_REDIS_RUN_USERS');
    expect(fails({ TANDEM_METRICS_REQUIRE_AUTH: 'yes' }).message).toContain('TANDEM_METRICS_REQUIRE_AUTH');
  });
});

describe('TokenReview principals', () => {
  it('maps service accounts to their namespace and tandem groups to roles', () => {
    const sa = principalOf({ authenticated: true, user: { username: 'system:serviceaccount:team-a:runner' } });
    expect(sa).toMatchObject({ subject: 'system:serviceaccount:team-a:runner', role: 'editor' });
    expect([...(sa?.namespaces as Set<string>)]).toEqual(['team-a']);
    const admin = principalOf({ authenticated: true, user: { username: 'root', groups: ['tandem:admin:*', 'other'] } });
    expect(admin).toMatchObject({ role: 'admin', namespaces: '*' });
    const viewer = principalOf({ authenticated: true, user: { username: 'v', groups: ['tandem:viewer:team-b', 'tandem:bogus:team-c', 'tandem:viewer:Bad_NS'] } });
    expect(viewer?.role).toBe('viewer');
    expect([...(viewer?.namespaces as Set<string>)]).toEqual(['team-b']);
    expect(principalOf({ authenticated: true, user: { username: 'nobody' } })?.namespaces).toEqual(new Set());
    expect(principalOf({ authenticated: false })).toBeUndefined();
  });
});
