// validate.mjs - node --test: deploy/k8s/ passes the Kubernetes API schemas
// (kubernetes-models) and agora's rules (manifests.mjs), and the same checks
// refuse broken copies, one fault each, so a pass means something.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { checkManifests, loadManifests, manifestDir, treeContext } from "./manifests.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const ctx = treeContext();
const pristine = loadManifests();

// A deep copy of the manifests with one object changed by edit(doc).
function broken(kind, name, edit) {
  const objects = structuredClone(pristine);
  const o = objects.find((x) => x.doc.kind === kind && x.doc.metadata.name === name);
  assert.ok(o, `no ${kind} ${name} in deploy/k8s`);
  edit(o.doc);
  return objects;
}
const container = (doc) => doc.spec.template.spec.containers[0];

test("deploy/k8s passes the API schemas and agora's rules", async () => {
  const kinds = pristine.map((o) => o.doc.kind);
  for (const k of ["ConfigMap", "Service", "StatefulSet", "Deployment", "NetworkPolicy"])
    assert.ok(kinds.includes(k), `no ${k} checked`);
  assert.deepEqual(await checkManifests(pristine, ctx), []);
});

// Each fault, and what the check must say about it.
const faults = [
  // the API schemas
  ["replicas not an integer", "Deployment", "agora-actor",
    (d) => { d.spec.replicas = "two"; }, "spec/replicas must be integer"],
  ["containerPort not an integer", "StatefulSet", "agora-learner",
    (d) => { container(d).ports[2].containerPort = "5582"; }, "containerPort must be integer"],
  ["a Service port without its port", "Service", "agora-env",
    (d) => { delete d.spec.ports[0].port; }, "spec/ports/0 must have required property port"],
  ["a container without a name", "Deployment", "agora-env",
    (d) => { delete container(d).name; }, "containers/0 must have required property name"],
  ["a misspelt kind", "Deployment", "agora-actor",
    (d) => { d.kind = "Deploymnet"; }, "unknown apiVersion/kind apps/v1/Deploymnet"],
  // agora's rules
  ["a selector that selects nothing", "Deployment", "agora-actor",
    (d) => { d.spec.selector.matchLabels["app.kubernetes.io/name"] = "actor"; },
    "spec.selector.matchLabels does not select"],
  ["an image of another version", "Deployment", "agora-env",
    (d) => { container(d).image = "localhost/agora:0.0.1"; }, "not localhost/agora:"],
  ["a tcpSocket liveness probe", "Deployment", "agora-env",
    (d) => { container(d).livenessProbe = { tcpSocket: { port: 5570 } }; },
    "livenessProbe must run agora probe env tcp://127.0.0.1:5570"],
  ["a probe asking the wrong service", "StatefulSet", "agora-learner",
    (d) => { container(d).readinessProbe.exec.command[2] = "env"; },
    "readinessProbe must run agora probe control"],
  ["a probe through a shell, which podman would run mangled", "StatefulSet", "agora-learner",
    (d) => { container(d).livenessProbe.exec.command = ["sh", "-c", "agora probe control tcp://127.0.0.1:5582"]; },
    "livenessProbe must run agora probe control tcp://127.0.0.1:5582"],
  ["a probe of another port", "StatefulSet", "agora-reward",
    (d) => { container(d).livenessProbe.exec.command[3] = "tcp://127.0.0.1:5570"; },
    "livenessProbe must run agora probe reward tcp://127.0.0.1:5560"],
  ["an env reference to a missing key", "Deployment", "agora-actor",
    (d) => { container(d).env[0].valueFrom.configMapKeyRef.key = "learner"; },
    "which no ConfigMap has"],
  ["checkpoints on a volume that does not outlive the pod", "StatefulSet", "agora-learner",
    (d) => {
      d.spec.volumeClaimTemplates[0].metadata.name = "scratch";
      d.spec.template.spec.volumes.push({ name: "state", emptyDir: {} });
    }, "must be a StatefulSet volume claim"],
  ["a StatefulSet without its headless Service", "Service", "agora-learner",
    (d) => { delete d.spec.clusterIP; }, "is not a headless Service"],
  ["a Service port no container serves", "Service", "agora-env",
    (d) => { d.spec.ports[0].targetPort = "envs"; }, "target envs is no port of agora-env"],
  ["peers reaching the learner by a name it does not have", "ConfigMap", "agora-cluster",
    (d) => { d.data.learner_host = "agora-learner"; }, "the learner pod is agora-learner-0.agora-learner"],
  ["a run file that is not examples/smoke.ini", "ConfigMap", "agora-run",
    (d) => { d.data["run.ini"] = d.data["run.ini"].replace("max_updates = 30", "max_updates = 31"); },
    "run.ini differs from examples/smoke.ini"],
  ["a container that runs no agora process", "Deployment", "agora-actor",
    (d) => { container(d).command = ["agora-actor"]; }, "its command is not agora-pod"],
];

for (const [what, kind, name, edit, expected] of faults) {
  test(`refused: ${what}`, async () => {
    const errors = await checkManifests(broken(kind, name, edit), ctx);
    assert.ok(errors.some((e) => e.includes(expected)),
      `expected an error containing "${expected}", got:\n${errors.join("\n")}`);
  });
}

test("check-manifests.mjs fails on a broken copy of deploy/k8s on disk", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "agora-k8s-"));
  try {
    fs.cpSync(manifestDir, tmp, { recursive: true });
    const cli = path.join(here, "check-manifests.mjs");
    const good = spawnSync(process.execPath, [cli, tmp], { encoding: "utf8" });
    assert.equal(good.status, 0, good.stderr);
    const file = path.join(tmp, "actor.yaml");
    const text = fs.readFileSync(file, "utf8");
    assert.ok(text.includes("replicas: 2"));
    fs.writeFileSync(file, text.replace("replicas: 2", "replicas: two"));
    const bad = spawnSync(process.execPath, [cli, tmp], { encoding: "utf8" });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /actor\.yaml: Deployment agora-actor: .*replicas must be integer/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
