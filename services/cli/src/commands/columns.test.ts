import { describe, expect, it } from 'vitest';
import { columnLines } from './columns.js';

describe('columnLines', () => {
  it('left-aligns columns two spaces apart, without trailing blanks', () => {
    expect(columnLines(['ID', 'PHASE', 'NOTE'], [['run-1', 'Running', ''], ['r2', 'Succeeded', 'done']])).toEqual([
      'ID     PHASE      NOTE',
      'run-1  Running',
      'r2     Succeeded  done',
    ]);
  });

  it('indents every line and draws a rule under the header when asked', () => {
    expect(columnLines(['A', 'BB'], [['xyz', '1']], { indent: '  ', rule: true })).toEqual(['  A    BB', '  ---  --', '  xyz  1']);
  });
});
