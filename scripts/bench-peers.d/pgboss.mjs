// pg-boss, one worker process fetching batches of 50, 4 at once, fetching
// again at once while batches come back full (without `burstWhenBatchFull`
// it waits its polling interval, 2 s by default, between fetches).
//
//   burn N: N no-op jobs inserted in chunks of 1,000, then worked: prints
//     {"enqueue", "burn_down"} (jobs/s).
//   work: works jobs as they come (load.mjs sends them) until SIGTERM. It
//     listens (`useListenNotify`) and its queue is made with `notify`, so a
//     send wakes it at once rather than at its next poll (every 0.5 s, the
//     least pg-boss allows).
import { PgBoss } from "pg-boss";

const [action, total] = [process.argv[2], Number(process.argv[3])];
const boss = new PgBoss({ connectionString: process.env.DATABASE_URL, useListenNotify: action !== "burn" });
boss.on("error", (err) => console.error(err));
await boss.start();
await boss.createQueue("noop", { notify: action !== "burn" });
const worker = { batchSize: 50, localConcurrency: 4, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 };

if (action === "burn") {
  let started = performance.now();
  for (let i = 0; i < total; i += 1000) {
    const chunk = [];
    for (let j = i; j < Math.min(total, i + 1000); j++) chunk.push({ data: { i: j } });
    await boss.insert("noop", chunk);
  }
  const enqueue = total / ((performance.now() - started) / 1000);
  let done = 0;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  started = performance.now();
  await boss.work("noop", worker, async (jobs) => {
    done += jobs.length;
    if (done >= total) finish();
  });
  await finished;
  // Stopping waits for the last completions to be written: they count.
  await boss.stop({ graceful: true, wait: true });
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ enqueue, burn_down: total / seconds, jobs: total }));
} else {
  await boss.work("noop", worker, async () => {});
  console.log("ready");
  await new Promise((resolve) => process.once("SIGTERM", resolve));
  await boss.stop({ graceful: true, wait: true });
  console.log(JSON.stringify({}));
}
