// learner-state.mjs DIR: what a learner's output directory says of its run,
// one figure a line for a shell test to read:
//   ppo_updates N     PPO records in metrics.jsonl
//   last_update N     the last record's update count (0: none yet)
//   state_updates N   updates in state.json (0: none written)
//   actor ID N        trajectories trained per actor, from the last record
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2];
const read = (name) => {
  try {
    return fs.readFileSync(path.join(dir, name), "utf8");
  } catch {
    return "";
  }
};
const ppo = read("metrics.jsonl").split("\n").filter((l) => l.trim())
  .map((l) => JSON.parse(l)).filter((r) => r.phase === "ppo");
const last = ppo.at(-1) ?? {};
const state = read("state.json");
console.log(`ppo_updates ${ppo.length}`);
console.log(`last_update ${last.update ?? 0}`);
console.log(`state_updates ${state ? Number(JSON.parse(state).updates ?? 0) : 0}`);
for (const [id, n] of Object.entries(last.actors ?? {})) console.log(`actor ${id} ${n}`);
