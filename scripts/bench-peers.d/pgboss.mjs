// pg-boss burn-down: N no-op jobs inserted in chunks of 1,000, then one
// worker fetching batches of 50, 4 at once, fetching again at once while
// batches come back full (without `burstWhenBatchFull` it waits its polling
// interval, 2 s by default, between fetches).
import { PgBoss } from "pg-boss";

const total = Number(process.argv[2]);
const boss = new PgBoss(process.env.DATABASE_URL);
boss.on("error", (err) => console.error(err));
await boss.start();
await boss.createQueue("noop");
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
await boss.work("noop", { batchSize: 50, localConcurrency: 4, burstWhenBatchFull: true }, async (jobs) => {
  done += jobs.length;
  if (done >= total) finish();
});
await finished;
// Stopping waits for the last completions to be written: they count.
await boss.stop({ graceful: true, wait: true });
const seconds = (performance.now() - started) / 1000;
console.log(JSON.stringify({ enqueue, burn_down: total / seconds, jobs: total }));
