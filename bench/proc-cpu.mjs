// CPU time of this benchmark's own child processes, from /proc (Linux): the processes
// descended from this node process whose command name passes `match`. Used to report
// server CPU per request for runtimes that report none themselves (workerd under
// `wrangler dev`, the Lambda functions under `cargo lambda watch`).
import { readdir, readFile } from 'node:fs/promises';

// USER_HZ: the unit of utime and stime in /proc/PID/stat; 100 on every Linux we run.
const TICKS_PER_SECOND = 100;

// "pid (comm) state ppid ..." — comm may contain spaces and parentheses.
function parseStat(pid, stat) {
  const open = stat.indexOf('('), close = stat.lastIndexOf(')');
  const f = stat.slice(close + 2).split(' ');
  return { pid, comm: stat.slice(open + 1, close), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
}

async function table() {
  const rows = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => null);
    if (stat) rows.push(parseStat(Number(name), stat));
  }
  return rows;
}

/** Seconds of CPU (user + system) used so far by process `pid`. */
export async function cpuSecondsOf(pid) {
  return parseStat(pid, await readFile(`/proc/${pid}/stat`, 'utf8')).ticks / TICKS_PER_SECOND;
}

/** Seconds of CPU (user + system) used so far by descendants of this process named `match`. */
export async function descendantCpuSeconds(match) {
  const rows = await table();
  const children = new Map();
  for (const r of rows) {
    if (!children.has(r.ppid)) children.set(r.ppid, []);
    children.get(r.ppid).push(r);
  }
  let ticks = 0, found = 0;
  const stack = [...(children.get(process.pid) || [])];
  while (stack.length) {
    const r = stack.pop();
    if (match(r.comm)) { ticks += r.ticks; found++; }
    stack.push(...(children.get(r.pid) || []));
  }
  if (found === 0) throw new Error('no matching child process to measure');
  return ticks / TICKS_PER_SECOND;
}
