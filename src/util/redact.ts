/**
 * Hides the credentials of URLs in text (`scheme://user:password@host` becomes
 * `scheme://***@host`), so that a proxy's password never reaches a log line, an error message or a
 * metric.
 *
 * @example
 * ```ts
 * redactCredentials('connect to http://me:secret@127.0.0.1:7890 failed'); // 'connect to http://***@127.0.0.1:7890 failed'
 * ```
 */
export function redactCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1***@');
}
