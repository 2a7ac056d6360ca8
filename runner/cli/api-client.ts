import { TocsinError } from '../../src/checks.js';
import { UsageError } from '../errors.js';

/** Where the running service is and how to authenticate. */
export interface ApiTarget {
  url: string;
  token: string;
}

/** The service's address from `--url` (default the local one) and the token from TOCSIN_TOKEN. */
export function resolveTarget(url: string | undefined, env: NodeJS.ProcessEnv): ApiTarget {
  const token = env.TOCSIN_TOKEN;
  if (!token) {
    throw new UsageError(
      "set TOCSIN_TOKEN to the service's API token (it is not taken as a flag, so it stays out of the process list)",
    );
  }
  return { url: (url ?? 'http://127.0.0.1:8080').replace(/\/$/, ''), token };
}

/**
 * Calls the service's API and returns the JSON answer.
 *
 * @throws TocsinError E_API naming the status and the service's one-line reason
 */
export async function callApi(
  target: ApiTarget,
  method: 'GET' | 'POST',
  route: string,
  body?: unknown,
): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(`${target.url}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${target.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (cause) {
    throw new TocsinError(
      'E_API',
      `cannot reach the service at ${target.url}; is "tocsin serve" running? pass --url`,
      { cause },
    );
  }
  const text = await response.text();
  const parsed = parseJson(text);
  if (!response.ok) {
    const reason = (parsed as { error?: unknown } | undefined)?.error;
    throw new TocsinError(
      'E_API',
      `the service answered ${response.status}: ${typeof reason === 'string' ? reason : text.slice(0, 200)}`,
    );
  }
  return parsed;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
