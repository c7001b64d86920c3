// A person at /docs: register through Swagger UI, log in with its
// Authorize dialog (the OAuth2 password flow), call GET /questions/topics,
// turn on two-factor sign-in and log in with a code; then, as the admin
// of `admin_emails` (verified with the link the app printed to its log),
// list the users and read the audit trail; and keep a screenshot.
// Usage: node docs.mjs <base-url> <screenshot.png> <admin-email> <app-log>
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

// RFC 6238 TOTP (HMAC-SHA-1, 6 digits, 30 s) from Node's own crypto: the
// authenticator app of this test, independent of the service's code.
function totp(base32Secret, step) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32Secret) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const hash = createHmac("sha1", key).update(counter).digest();
  const offset = hash[hash.length - 1] & 0x0f;
  return String((hash.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

const [baseUrl, screenshot, adminEmail, appLog] = process.argv.slice(2);
const email = `browser-${Date.now()}@example.com`;
const password = "correct horse battery staple";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const failures = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
  // Nothing may be fetched from anywhere but the app.
  page.on("request", (request) => {
    if (!request.url().startsWith(baseUrl) && !request.url().startsWith("data:")) {
      failures.push(`request to ${request.url()}`);
    }
  });
  page.on("pageerror", (error) => failures.push(`page error: ${error.message}`));

  await page.goto(`${baseUrl}/docs`);
  await page.waitForSelector(".swagger-ui .info .title", { timeout: 30_000 });

  // Runs an operation with "Try it out" and returns the status it shows.
  async function execute(operationId, tag, body) {
    const block = page.locator(`#operations-${tag}-${operationId}`);
    // Open it, unless an earlier call left it open with its last response.
    if (await block.evaluate((element) => element.classList.contains("is-open"))) {
      const clear = block.locator("button.btn-clear");
      if ((await clear.count()) > 0) await clear.first().click();
    } else {
      await block.locator(".opblock-summary").first().click();
    }
    // The page enables "Try it out" for every operation; click it if not.
    const tryOut = block.getByRole("button", { name: "Try it out" });
    if ((await tryOut.count()) > 0) {
      await tryOut.first().click();
    }
    if (body !== undefined) {
      await block.locator("textarea.body-param__text").fill(JSON.stringify(body));
    }
    await block.locator("button.execute").click();
    const status = block.locator(".live-responses-table .response .response-col_status").first();
    await status.waitFor({ timeout: 30_000 });
    return (await status.textContent()).trim();
  }

  const registered = await execute("register", "auth", { email, password });
  if (!registered.startsWith("201")) failures.push(`register answered ${registered}`);

  await page.locator("button.authorize").first().click();
  const dialog = page.locator(".dialog-ux .modal-ux");
  const oauth2 = dialog.locator(".auth-container").filter({ has: page.locator("#oauth_username") });
  await oauth2.locator("#oauth_username").fill(email);
  await oauth2.locator("#oauth_password").fill(password);
  await oauth2.locator("button.authorize").click();
  // Authorized, the section shows its values and a Logout button.
  await dialog.locator("button", { hasText: "Logout" }).first().waitFor({ timeout: 30_000 });
  await dialog.locator("button.close-modal").first().click();

  const topics = await execute("listTopics", "questions");
  if (!topics.startsWith("200")) failures.push(`GET /questions/topics answered ${topics}`);
  await page.screenshot({ path: screenshot, fullPage: false });

  // Two-factor sign-in, both steps as the document describes them: enrol
  // and confirm (Authorized), then log in and verify with a code.
  async function executeForBody(operationId, tag, path, body) {
    const [response, status] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith(path) && r.request().method() === "POST", {
        timeout: 30_000,
      }),
      execute(operationId, tag, body),
    ]);
    return [status, await response.json()];
  }
  const [enrolled, enrolment] = await executeForBody("enrolTotp", "mfa", "/auth/mfa/totp");
  if (!enrolled.startsWith("200")) failures.push(`POST /auth/mfa/totp answered ${enrolled}`);
  const step = Math.floor(Date.now() / 1000 / 30);
  const confirmed = await execute("confirmTotp", "mfa", { code: totp(enrolment.secret, step) });
  if (!confirmed.startsWith("200")) failures.push(`POST /auth/mfa/totp/confirm answered ${confirmed}`);
  const [loggedIn, challenge] = await executeForBody("login", "auth", "/auth/login", { email, password });
  if (!loggedIn.startsWith("403") || !challenge.mfa_token) {
    failures.push(`POST /auth/login answered ${loggedIn} without an mfa_token`);
  }
  const verified = await execute("verifySecondFactor", "mfa", {
    mfa_token: challenge.mfa_token,
    code: totp(enrolment.secret, step + 1),
  });
  if (!verified.startsWith("200")) failures.push(`POST /auth/mfa/verify answered ${verified}`);

  // The administration: the admin registers and proves the address with
  // the link the app printed (it has no mail_url), then Authorizes.
  const adminRegistered = await execute("register", "auth", { email: adminEmail, password });
  if (!adminRegistered.startsWith("201")) failures.push(`admin register answered ${adminRegistered}`);
  let link = null;
  for (let i = 0; i < 50 && !link; i++) {
    const log = readFileSync(appLog, "utf8");
    const start = log.lastIndexOf(` to ${adminEmail} `);
    link = start >= 0 ? log.slice(start).match(/verify-email\?token=([A-Za-z0-9_-]+)/)?.[1] : null;
    if (!link) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const adminVerified = await execute("verifyEmail", "auth", { token: link });
  if (!adminVerified.startsWith("200")) failures.push(`verifying the admin answered ${adminVerified}`);
  await page.locator("button.authorize").first().click();
  for (const logout of await dialog.locator("button", { hasText: "Logout" }).all()) {
    await logout.click();
  }
  await oauth2.locator("#oauth_username").fill(adminEmail);
  await oauth2.locator("#oauth_password").fill(password);
  await oauth2.locator("button.authorize").click();
  await dialog.locator("button", { hasText: "Logout" }).first().waitFor({ timeout: 30_000 });
  await dialog.locator("button.close-modal").first().click();
  const [listed, users] = await Promise.all([
    page.waitForResponse((r) => r.url().includes("/admin/users"), { timeout: 30_000 }),
    execute("listUsers", "admin"),
  ]).then(async ([response, status]) => [status, await response.json()]);
  if (!listed.startsWith("200") || !users.items?.some((user) => user.email === email)) {
    failures.push(`GET /admin/users answered ${listed} without ${email}`);
  }
  const audit = await execute("listAudit", "admin");
  if (!audit.startsWith("200")) failures.push(`GET /admin/audit answered ${audit}`);
} finally {
  await browser.close();
}
if (failures.length > 0) {
  console.error(failures.join("\n"));
  process.exit(1);
}
console.log(
  `registered, authorized, listed topics, signed in with a second factor, and listed users and ` +
    `the audit trail as an admin; screenshot in ${screenshot}`,
);
