// graphile-worker, one worker process.
//
//   burn <unbatched|batched> N: N no-op jobs added in one statement, then
//     run: prints {"enqueue", "burn_down"} (jobs/s).
//   work <unbatched|batched>: runs jobs as they come (load.mjs adds them)
//     until SIGTERM, then prints {"latencies"}: for each job marked paced,
//     the milliseconds from its row's created_at to its task starting.
//
// `unbatched`: 10 concurrent jobs, each fetched on its own; `batched`: 24
// concurrent jobs fed from a local queue of 500, completions batched without
// delay (the project's documented fast path).
import { run, makeWorkerUtils, Logger } from "graphile-worker";

// Its default logger writes a line per job: quiet, as a production setup would be.
const logger = new Logger(() => () => {});

const [action, mode, total] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const connectionString = process.env.DATABASE_URL;
const batched = mode === "batched";
const utils = await makeWorkerUtils({ connectionString, logger });
await utils.migrate();

let done = 0;
let finish;
const finished = new Promise((resolve) => (finish = resolve));
const latencies = [];
const options = {
  connectionString,
  concurrency: batched ? 24 : 10,
  noHandleSignals: true,
  pollInterval: 1000,
  taskList: {
    noop: async (payload, helpers) => {
      if (payload.paced) latencies.push(Date.now() - helpers.job.created_at.getTime());
      if (++done === total) finish();
    },
  },
  preset: batched ? { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } } : {},
  logger,
};

if (action === "burn") {
  let started = performance.now();
  await utils.withPgClient((client) =>
    client.query("select graphile_worker.add_job('noop', json_build_object('i', g)) from generate_series(1, $1) g", [total]),
  );
  const enqueue = total / ((performance.now() - started) / 1000);
  await utils.release();
  started = performance.now();
  const runner = await run(options);
  await finished;
  // Stopping flushes the completions still batched: they count.
  await runner.stop();
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ enqueue, burn_down: total / seconds, jobs: total }));
} else {
  await utils.release();
  const runner = await run(options);
  console.log("ready");
  await new Promise((resolve) => process.once("SIGTERM", resolve));
  await runner.stop();
  console.log(JSON.stringify({ latencies }));
}
