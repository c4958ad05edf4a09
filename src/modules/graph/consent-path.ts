/**
 * Where Entra sends a client's administrator back after admin consent (the app registration's
 * redirect URI). Its own file: the CLI needs it without loading the service and its dependencies.
 */
export const CONSENT_CALLBACK_PATH = '/api/v1/graph/consent/callback';
