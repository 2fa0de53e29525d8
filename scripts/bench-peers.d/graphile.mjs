// graphile-worker burn-down: N no-op jobs added in one statement, then one
// worker process runs them. `unbatched`: 10 concurrent jobs, each fetched
// on its own; `batched`: 24 concurrent jobs fed from a local queue of 500,
// completions batched without delay (the project's documented fast path).
import { run, makeWorkerUtils, Logger } from "graphile-worker";

// Its default logger writes a line per job: quiet, as a production setup would be.
const logger = new Logger(() => () => {});

const [mode, total] = [process.argv[2], Number(process.argv[3])];
const connectionString = process.env.DATABASE_URL;
const utils = await makeWorkerUtils({ connectionString, logger });
await utils.migrate();
let started = performance.now();
await utils.withPgClient((client) =>
  client.query("select graphile_worker.add_job('noop', json_build_object('i', g)) from generate_series(1, $1) g", [total]),
);
const enqueue = total / ((performance.now() - started) / 1000);
await utils.release();

let done = 0;
let finish;
const finished = new Promise((resolve) => (finish = resolve));
const batched = mode === "batched";
started = performance.now();
const runner = await run({
  connectionString,
  concurrency: batched ? 24 : 10,
  noHandleSignals: true,
  pollInterval: 1000,
  taskList: { noop: async () => { if (++done === total) finish(); } },
  preset: batched ? { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } } : {},
  logger,
});
await finished;
// Stopping flushes the completions still batched: they count.
await runner.stop();
const seconds = (performance.now() - started) / 1000;
console.log(JSON.stringify({ enqueue, burn_down: total / seconds, jobs: total }));
