// podman-kube.mjs OUTDIR: writes deploy/k8s/'s job (not optional/) as what
// Debian 12's `podman kube play` (4.3) runs, one file per workload,
// OUTDIR/NAME.yaml, each with the ConfigMaps its pods read. It changes only
// what podman cannot run, and prints each change:
//
// * Services and NetworkPolicies are left out (podman skips them): pods on a
//   `podman network create` network reach each other by pod name instead, so
//   agora-cluster's names become the pods' podman names (a Deployment NAME's
//   first pod is NAME-pod-0).
// * A StatefulSet becomes a Deployment with the same pod template (podman has
//   no StatefulSet), and each volume claim template a PersistentVolumeClaim
//   named as Kubernetes names it (CLAIM-NAME-0), a podman volume.
// * Init containers are left out: podman 4.3.1 fails to remove one that has
//   finished ("failed to remove once init container"); the test starts the
//   pods in the order they wait for instead.
//
// The manifests are checked first (manifests.mjs); any error stops it.

import fs from "node:fs";
import path from "node:path";
import yaml from "js-yaml";
import { checkManifests, loadManifests, treeContext } from "./manifests.mjs";

const outDir = process.argv[2];
if (!outDir) {
  console.error("usage: podman-kube.mjs OUTDIR");
  process.exit(2);
}
const all = loadManifests();
const errors = await checkManifests(all, treeContext());
if (errors.length) {
  for (const e of errors) console.error(`error: ${e}`);
  process.exit(1);
}
const objects = all.filter((o) => !o.file.includes(path.sep)).map((o) => o.doc);
const note = (msg) => console.log(`podman-kube: ${msg}`);

const workloads = objects.filter((d) => d.kind === "Deployment" || d.kind === "StatefulSet");
const podName = (w) => `${w.metadata.name}-pod-0`;
const roleWorkload = (role) => workloads.find((w) =>
  w.spec.template.spec.containers.some((c) => c.command?.[0] === "agora-pod" && c.command[1] === role));

const configMaps = objects.filter((d) => d.kind === "ConfigMap");
const cluster = configMaps.find((d) => d.metadata.name === "agora-cluster");
for (const [key, role] of [["learner_host", "learner"], ["env_host", "env"], ["reward_host", "reward"]]) {
  const w = roleWorkload(role);
  if (!cluster.data[key]) continue;
  if (!w) {
    console.error(`podman-kube: agora-cluster names a ${role} (${cluster.data[key]}) that deploy/k8s does not run`);
    process.exit(1);
  }
  note(`agora-cluster ${key}: ${cluster.data[key]} -> ${podName(w)}`);
  cluster.data[key] = podName(w);
}
for (const d of objects)
  if (d.kind !== "ConfigMap" && !workloads.includes(d)) note(`${d.kind} ${d.metadata.name} left out`);

fs.mkdirSync(outDir, { recursive: true });
for (const w of workloads) {
  const docs = [...configMaps];
  let spec = structuredClone(w.spec);
  if (w.kind === "StatefulSet") {
    const template = spec.template;
    template.spec.volumes ??= [];
    for (const claim of spec.volumeClaimTemplates ?? []) {
      const claimName = `${claim.metadata.name}-${w.metadata.name}-0`;
      docs.push({ apiVersion: "v1", kind: "PersistentVolumeClaim",
        metadata: { name: claimName, labels: claim.metadata.labels }, spec: claim.spec });
      template.spec.volumes.push({ name: claim.metadata.name, persistentVolumeClaim: { claimName } });
      note(`StatefulSet ${w.metadata.name}: volume ${claim.metadata.name} is the volume ${claimName}`);
    }
    spec = { replicas: spec.replicas, selector: spec.selector, template };
    note(`StatefulSet ${w.metadata.name} runs as a Deployment (pod ${podName(w)})`);
  }
  if (spec.template.spec.initContainers) {
    note(`${w.metadata.name}: init containers left out (${spec.template.spec.initContainers.map((c) => c.name).join(", ")})`);
    delete spec.template.spec.initContainers;
  }
  docs.push({ apiVersion: "apps/v1", kind: "Deployment", metadata: w.metadata, spec });
  const file = path.join(outDir, `${w.metadata.name}.yaml`);
  fs.writeFileSync(file, docs.map((d) => yaml.dump(d, { lineWidth: -1 })).join("---\n"));
  note(`wrote ${file}`);
}
