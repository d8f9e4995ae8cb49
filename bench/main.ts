/**
 * Runs a benchmark's main: exit 0 when it is done (servers and agents it started may hold the
 * event loop), exit 1 with the stack when it fails.
 */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
