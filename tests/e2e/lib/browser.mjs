// Debian's headless Chromium for the browser tests (40-*, 41-*), driven by
// playwright-core; never Playwright's own browser download. scripts/install-browser
// installs /usr/bin/chromium; CHROMIUM_BIN overrides.
import { access, constants, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
// Without the background-networking switches Chromium tries hosts this machine cannot reach.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A persistent context in a fresh temporary user-data-dir. Resolves {context, dir}. */
export async function launchChromium(options = {}) {
  try {
    await access(CHROMIUM, constants.X_OK);
  } catch {
    throw new Error(`Chromium not found at ${CHROMIUM}: run scripts/install-browser (apt-get install -y chromium)`);
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'latchkey-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000, ...options,
    });
    context.setDefaultTimeout(15000);
    return { context, dir };
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`Chromium (${CHROMIUM}) did not start: ${e.message}`);
  }
}
