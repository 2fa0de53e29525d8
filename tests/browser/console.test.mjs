// Provisio's console in a real browser: playwright-core drives Debian's
// chromium against a real `provisio serve --demo` (the binary the Rust tests
// built; PROVISIO_BIN names it). Run by scripts/browser-test, from .ci/run.
//
// The screenshots in docs/screenshots/ are made here.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const here = dirname(fileURLToPath(import.meta.url));
const shots = join(here, "..", "..", "docs", "screenshots");
const TOKEN = "browser-test-token-0123456789";
const SECRET = "browser-secret-9f3a-never-shown";
const PASSWORD = "long-enough-pass-1";

let server, base, browser, dir;

/** Starts `provisio serve --demo` on a port it picks; resolves its address. */
function startServer() {
  dir = mkdtempSync(join(tmpdir(), "provisio-browser-"));
  const bin = process.env.PROVISIO_BIN;
  assert.ok(bin, "PROVISIO_BIN names the provisio binary");
  server = spawn(bin, ["serve", "--demo", "--listen", "127.0.0.1:0", "--max-attempts", "1", "--poll-ms", "100",
                       "--retry-base-ms", "50", "--usage-interval-secs", "0"], {
    cwd: dir,
    env: { ...process.env, PROVISIO_ADMIN_TOKEN: TOKEN, PROVISIO_LOG_FORMAT: "json", RUST_LOG: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error("the server did not start:\n" + seen)), 30000);
    const read = (chunk) => {
      seen += chunk.toString();
      const found = seen.match(/staff API listening[^\n]*?(127\.0\.0\.1:\d+)/) || seen.match(/(127\.0\.0\.1:\d+)[^\n]*staff API listening/);
      if (found) {
        clearTimeout(timer);
        resolve(`http://${found[1]}`);
      }
    };
    server.stdout.on("data", read);
    server.stderr.on("data", read);
    server.on("exit", (code) => reject(new Error(`the server exited (${code}):\n${seen}`)));
  });
}

async function api(method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function until(what, check, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value) return value;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function order(id, client, product, fields) {
  return {
    id, type: "order.paid",
    service: { external_id: `contract-${id}`, product, fields,
               client: { external_id: client, name: `Client ${client}`, email: `${client}@example.com` } },
    data: {},
  };
}

/** A fresh browser page signed in as staff. */
async function staffPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...options });
  context.setDefaultTimeout(15000);
  const page = await context.newPage();
  await page.goto(base + "/login");
  await page.getByLabel("Username").fill("ann");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(base + "/");
  return page;
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  base = await startServer();
  await api("POST", "/api/v1/users", { username: "ann", scope: "admin", password: PASSWORD });
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("staff sign in, add a configuration through its generated form, and its secret is only ever 'set'", async () => {
  const page = await staffPage();
  await page.getByRole("link", { name: "Configurations" }).click();
  await page.getByRole("link", { name: "Add a configuration" }).click();
  const sharedHosting = page.locator("section.choice").filter({ has: page.getByRole("heading", { name: /^shared web hosting$/i }) });
  await sharedHosting.getByRole("link").first().click();
  await page.getByRole("textbox", { name: "name", exact: true }).fill("eu-web-2");
  await page.getByRole("textbox", { name: "server", exact: true }).fill("eu2");
  await page.getByLabel(/^api key/).fill(SECRET);
  // A slow server of its own, so the service page is seen provisioning.
  await page.getByRole("spinbutton", { name: "latency ms" }).fill("3000");
  await page.getByRole("textbox", { name: "attributes", exact: true }).fill('{"location": "eu-west"}');
  await page.screenshot({ path: join(shots, "configuration-form.png"), fullPage: true });
  await page.getByRole("button", { name: "Add configuration" }).click();
  await page.waitForURL(/\/configurations\/\d+$/);
  assert.equal(await page.locator(".secret-state").first().textContent(), "set");
  assert.ok(!(await page.content()).includes(SECRET), "the secret is not in the page");
  assert.equal(await page.getByLabel(/^api key/).inputValue(), "");
  await page.getByRole("button", { name: "Test connection" }).click();
  await page.getByText("Connected.").waitFor();
  await page.context().close();
});

test("a product with dynamic deployment; an order becomes active on screen without reloading; an on-demand action runs", async () => {
  const page = await staffPage();
  await page.getByRole("link", { name: "Products" }).click();
  await page.getByRole("link", { name: "Add a product" }).click();
  await page.getByRole("link", { name: /^shared web hosting$/i }).click();
  await page.getByLabel("Slug").fill("web-eu");
  await page.getByLabel("Name").fill("Web hosting EU");
  await page.getByRole("radio", { name: /^Dynamic/ }).check();
  await page.getByLabel("Strategy (dynamic)").selectOption("fill");
  await page.getByLabel(/^Attributes a configuration must have/).fill('{"location": "eu-west"}');
  await page.getByLabel(/^Provision fields/).fill('{"package_name": "basic"}');
  await page.getByRole("button", { name: "Add product" }).click();
  await page.waitForURL(base + "/products/web-eu");

  // The order lands on the slow eu-west server: the page shows it
  // provisioning and must turn active by itself.
  const accepted = await api("POST", "/api/v1/events", order("b1", "kim", "web-eu", { domain: "kim.example.net", username: "kim" }));
  let navigations = 0;
  await page.goto(`${base}/services/${accepted.service_id}`);
  page.on("framenavigated", () => navigations++);
  assert.ok(await page.locator("#live .status-provisioning, #live .status-pending").count() > 0, "seen before it is done");
  await page.locator("#live .status-active").first().waitFor({ timeout: 20000 });
  assert.equal(navigations, 0, "the page was not reloaded");
  await page.screenshot({ path: join(shots, "service.png"), fullPage: true });

  await page.locator("summary", { hasText: "get_login_url" }).click();
  await page.getByRole("button", { name: "Run get_login_url" }).click();
  await page.getByText("get_login_url: done.").waitFor();

  await page.goto(base + "/fleet");
  await page.screenshot({ path: join(shots, "fleet.png"), fullPage: true });
  await page.context().close();
});

test("a failed job is retried from the jobs page", async () => {
  // A server that fails every call, and a product always deployed on it.
  const server = await api("POST", "/api/v1/configurations", {
    name: "flaky", provider: "shared-hosting/demo", values: { server: "flaky1", transient_rate: 1.0 },
    attributes: { location: "nowhere" },
  });
  await api("POST", "/api/v1/products", {
    slug: "web-flaky", name: "Flaky hosting", blueprint: "shared-hosting",
    deployment: { type: "static", configuration_id: server.id }, provision_fields: { package_name: "basic" },
  });
  const accepted = await api("POST", "/api/v1/events", order("b2", "lee", "web-flaky", { domain: "lee.example.net", username: "lee" }));
  const job = await until("the job to fail", async () => {
    const jobs = await api("GET", `/api/v1/jobs?service_id=${accepted.service_id}`);
    return jobs.find((j) => j.state === "failed");
  });
  await api("PATCH", `/api/v1/configurations/${server.id}`, { values: { transient_rate: 0.0 } });
  const page = await staffPage();
  await page.getByRole("link", { name: "Jobs" }).click();
  await page.getByLabel(`Select job ${job.id}`).check();
  await page.getByRole("button", { name: "Retry selected" }).click();
  await page.waitForURL(/\/jobs/);
  await until("the retried job to succeed", async () => {
    const jobs = await api("GET", `/api/v1/jobs?service_id=${accepted.service_id}`);
    return jobs.some((j) => j.id === job.id && j.state === "succeeded");
  });
  await page.context().close();
});

test("a client opens the hand-off link, sees only its services and lands on the panel's login; another client cannot reach it", async () => {
  const mine = await api("POST", "/api/v1/events", order("b3", "max", "demo-hosting", { domain: "max.example.net", username: "maxim" }));
  const theirs = await api("POST", "/api/v1/events", order("b4", "nia", "demo-hosting", { domain: "nia.example.net", username: "nia" }));
  for (const id of [mine.service_id, theirs.service_id]) {
    await until(`service ${id} to be active`, async () => (await api("GET", `/api/v1/services/${id}`)).service.status === "active");
  }
  const maxId = (await api("GET", `/api/v1/services/${mine.service_id}`)).service.client_id;
  const niaId = (await api("GET", `/api/v1/services/${theirs.service_id}`)).service.client_id;

  const context = await browser.newContext({ viewport: { width: 412, height: 860 } });
  // The demo panel's address is not a real host: the browser is answered here.
  await context.route(/demo\.provisio\.invalid/, (route) =>
    route.fulfill({ status: 200, contentType: "text/html", body: "<h1>Demo panel</h1>" }));
  const page = await context.newPage();
  const session = await api("POST", `/api/v1/clients/${maxId}/sessions`, {});
  await page.goto(session.handoff_url);
  await page.waitForURL(base + "/client");
  const listing = await page.content();
  assert.ok(listing.includes(`/client/services/${mine.service_id}`));
  assert.ok(!listing.includes(`/client/services/${theirs.service_id}`), "only their own services");
  await page.locator(`a[href="/client/services/${mine.service_id}"]`).click();
  await page.waitForURL(`${base}/client/services/${mine.service_id}`);
  await page.screenshot({ path: join(shots, "client-area.png"), fullPage: true });
  await page.getByRole("link", { name: "Log in to the control panel" }).click();
  await page.waitForURL(/demo\.provisio\.invalid.*session=/);
  await page.getByText("Demo panel").waitFor();
  await context.close();

  // Another client, by URL: not found.
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  const otherSession = await api("POST", `/api/v1/clients/${niaId}/sessions`, {});
  await otherPage.goto(otherSession.handoff_url);
  await otherPage.waitForURL(base + "/client");
  const response = await otherPage.goto(`${base}/client/services/${mine.service_id}`);
  assert.equal(response.status(), 404);
  await other.close();
});

test("the dashboard after the day's work, and every staff page passes axe-core's serious and critical rules", async () => {
  // axe runs inside the page: the test context may bypass the console's CSP to inject it.
  const page = await staffPage({ bypassCSP: true });
  await page.screenshot({ path: join(shots, "dashboard.png"), fullPage: true });
  const paths = ["/", "/fleet", "/configurations", "/configurations/new?provider=shared-hosting/demo", "/products",
                 "/products/new?blueprint=shared-hosting", "/products/web-eu", "/services", "/services/1", "/jobs?state=any",
                 "/reports", "/reports/jobs", "/audit", "/access", "/jobs/1",
                 "/workbench?provider=shared-hosting/demo", "/webhooks",
                 "/events", "/reports/activation"];
  const problems = [];
  for (const path of paths) {
    await page.goto(base + path);
    await page.addScriptTag({ content: axeSource });
    const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
    for (const v of result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")) {
      problems.push(`${path}: ${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
    }
  }
  const login = await browser.newContext({ bypassCSP: true });
  const loginPage = await login.newPage();
  await loginPage.goto(base + "/login");
  await loginPage.addScriptTag({ content: axeSource });
  const result = await loginPage.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  for (const v of result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")) problems.push(`/login: ${v.id}`);
  await login.close();
  assert.deepEqual(problems, []);
  await page.context().close();
});
