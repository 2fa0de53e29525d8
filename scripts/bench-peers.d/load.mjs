// The load generator for a peer's end-to-end and latency runs, in its own
// process beside the peer's worker: each event is one job enqueued on its
// own through the peer's own way in (as a billing webhook's handler would),
// `inflight` at once.
//
//   node load.mjs <graphile|pgboss|river> e2e <count> <inflight>
//     as fast as it goes; prints {"rate"}: events per second from the first
//     enqueue to the last job done (its row completed or gone).
//   node load.mjs <peer> paced <count> <per_second>
//     one event every 1/per_second s, marked paced; prints {"p50", "p99"}
//     (ms from the job's row created to its run starting) where the row keeps
//     both times (pg-boss, River), else nothing (graphile-worker deletes a done
//     job: its worker reports them).
//
// River's insert is its Rust client's (riverqueue 0.5.0, client/insert.rs)
// written out: the row, then one notification on the schema's river_insert
// channel, so its producers wake as they would for its own client's insert.
import pg from "pg";
import { PgBoss } from "pg-boss";

const [peer, mode, count, arg] = [process.argv[2], process.argv[3], Number(process.argv[4]), Number(process.argv[5])];
const connectionString = process.env.DATABASE_URL;
const inflight = mode === "e2e" ? arg : 64;
const pool = new pg.Pool({ connectionString, max: inflight });

let boss;
if (peer === "pgboss") {
  boss = new PgBoss({ connectionString, max: inflight, supervise: false, schedule: false, migrate: false });
  boss.on("error", (err) => console.error(err));
  await boss.start();
}

const enqueue = {
  graphile: (data) => pool.query("select graphile_worker.add_job('noop', $1::json)", [data]),
  pgboss: (data) => boss.send("noop", data),
  river: (data) =>
    pool.query(
      "with job as (insert into river_job (args, kind, max_attempts, queue) values ($1::jsonb, 'benchmark', 25, 'default') returning id) " +
        "select pg_notify(current_schema() || '.river_insert', json_build_object('queue', 'default')::text) from job",
      [data],
    ),
}[peer];

// Jobs not finished (a failed one is finished: the drain must end).
const left = {
  graphile: "select count(*)::int as n from graphile_worker.jobs where attempts < max_attempts",
  pgboss: "select count(*)::int as n from pgboss.job where name = 'noop' and state in ('created', 'retry', 'active')",
  river:
    "select count(*)::int as n from river_job where state in ('available', 'pending', 'retryable', 'running', 'scheduled')",
}[peer];

const latency = {
  pgboss: "from pgboss.job where name = 'noop' and (data->>'paced')::boolean and started_on is not null",
  river: "from river_job where (args->>'paced')::boolean and attempted_at is not null",
}[peer];
const delay = { pgboss: "started_on - created_on", river: "attempted_at - created_at" }[peer];

async function drained() {
  while ((await pool.query(left)).rows[0].n > 0) await new Promise((r) => setTimeout(r, 10));
}

const started = performance.now();
let next = 0;
if (mode === "e2e") {
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (next < count) {
        const num = ++next;
        await enqueue({ num });
      }
    }),
  );
  await drained();
  console.log(JSON.stringify({ rate: count / ((performance.now() - started) / 1000) }));
} else {
  const every = 1000 / arg;
  const pending = new Set();
  for (let i = 0; i < count; i++) {
    const wait = started + i * every - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    while (pending.size >= inflight) await Promise.race(pending);
    const sent = enqueue({ num: i + 1, paced: true }).finally(() => pending.delete(sent));
    pending.add(sent);
  }
  await Promise.all(pending);
  await drained();
  if (latency) {
    const { rows } = await pool.query(
      `select percentile_cont(array[0.5, 0.99]) within group (order by extract(epoch from ${delay}) * 1000) as p ${latency}`,
    );
    console.log(JSON.stringify({ p50: rows[0].p[0], p99: rows[0].p[1] }));
  } else {
    console.log(JSON.stringify({}));
  }
}
if (boss) await boss.stop({ graceful: false, wait: false });
await pool.end();
