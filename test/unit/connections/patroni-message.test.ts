// Patroni's HTTP errors are HTML pages from Python's http.server: a message, not markup.
import { describe, expect, it } from 'vitest';
import { patroniMessage } from '../../../src/connections/patroni.js';

const page = (
  code: number,
  message: string,
  explanation: string,
) => `<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN"
        "http://www.w3.org/TR/html4/strict.dtd">
<html>
    <head>
        <meta http-equiv="Content-Type" content="text/html;charset=utf-8">
        <title>Error response</title>
    </head>
    <body>
        <h1>Error response</h1>
        <p>Error code: ${code}</p>
        <p>Message: ${message}.</p>
        <p>Error code explanation: ${explanation}.</p>
    </body>
</html>
`;

describe('patroniMessage', () => {
  it('an error page becomes its message and explanation', () => {
    expect(patroniMessage(page(409, 'Conflict', '409 - Request conflict'))).toBe(
      'Conflict: 409 - Request conflict',
    );
    expect(
      patroniMessage(
        page(503, 'Service Unavailable', 'The server cannot process the request due to a high load'),
      ),
    ).toBe('Service Unavailable: The server cannot process the request due to a high load');
  });
  it('plain text and JSON stay, on one line, cut at 200 characters', () => {
    expect(patroniMessage('Switchover is possible only\nto a specific candidate')).toBe(
      'Switchover is possible only to a specific candidate',
    );
    expect(patroniMessage('{"ttl": 30}')).toBe('{"ttl": 30}');
    expect(patroniMessage('x'.repeat(300))).toHaveLength(201);
    expect(patroniMessage('  ')).toBe('(no text)');
  });
  it('other markup is stripped, entities decoded', () => {
    expect(patroniMessage('<html><body><b>refused</b> &amp; &quot;done&quot;</body></html>')).toBe(
      'refused & "done"',
    );
  });
});
