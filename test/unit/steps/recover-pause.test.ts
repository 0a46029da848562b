// A snapshot taken while Patroni was paused holds the pause in patroni.dynamic.json; the restored
// copy must not start paused, and must keep everything else.
import { describe, expect, it } from 'vitest';
import { withoutSavedPause } from '../../../src/steps/backup/recover.js';

describe('backup.recover: the saved pause', () => {
  it('is dropped, everything else kept', () => {
    const saved =
      '{"ttl": 20, "loop_wait": 2, "postgresql": {"use_slots": true, "parameters": {"work_mem": "7MB"}}, "pause": true}';
    expect(JSON.parse(withoutSavedPause(saved)!)).toEqual({
      ttl: 20,
      loop_wait: 2,
      postgresql: { use_slots: true, parameters: { work_mem: '7MB' } },
    });
  });
  it('a file without a pause is left as it is', () => {
    expect(withoutSavedPause('{"ttl": 20}')).toBeUndefined();
  });
  it('a file that is not JSON is a step failure, not a crash', () => {
    expect(() => withoutSavedPause('{"ttl": ')).toThrow(
      'patroni.dynamic.json in the restored copy is not JSON',
    );
  });
});
