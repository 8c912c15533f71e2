/**
 * Environment variable set by Tandem's local runtime on the processes it
 * starts. Those processes run in their own process group (so a terminal's
 * Ctrl-C reaches only the parent, which then stops them in order), and
 * therefore must notice by themselves when the parent dies: the parent
 * holds their stdin open, and its end means the parent is gone.
 */
export const PARENT_PIPE_ENV = 'TANDEM_PARENT_PIPE';

/** Calls `onParentGone` once when the parent that started us (with a stdin pipe) exits. */
export function watchParent(onParentGone: () => void): void {
  if (process.env[PARENT_PIPE_ENV] !== '1') return;
  let called = false;
  const fire = (): void => {
    if (called) return;
    called = true;
    onParentGone();
  };
  process.stdin.on('end', fire);
  process.stdin.on('close', fire);
  process.stdin.on('error', fire);
  process.stdin.resume();
}
