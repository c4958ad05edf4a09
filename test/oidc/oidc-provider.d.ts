/** The few parts of oidc-provider 8 (which ships no types) that test/oidc/provider.ts uses. */
declare module 'oidc-provider' {
  import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
  type Ctx = { path: string; method: string; body: unknown };
  class Grant {
    constructor(init: { accountId: string; clientId: string });
    static find(id: string): Promise<Grant | undefined>;
    addOIDCScope(scope: string): void;
    save(): Promise<string>;
  }
  class AccessToken {
    static find(value: string): Promise<AccessToken | undefined>;
    readonly accountId?: string;
    readonly scope?: string;
    readonly isExpired: boolean;
  }
  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    Grant: typeof Grant;
    AccessToken: typeof AccessToken;
    callback(): RequestListener;
    use(fn: (ctx: Ctx, next: () => Promise<void>) => Promise<void>): void;
    on(event: string, fn: (...args: any[]) => void): void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<{ uid: string; grantId?: string; params: Record<string, unknown> }>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: Record<string, unknown>,
      opts?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
  }
}
