// manifests.mjs - reads agora's Kubernetes manifests (deploy/k8s/) and checks
// them: each object against the Kubernetes API schema of its kind
// (kubernetes-models), then the rules that tie the objects together, which no
// schema sees: selectors that select, Services whose ports exist, probes that
// speak agora's protocol to the port the container serves, names the pods
// reach each other by, the image of this version, the run file shipped.
// check-manifests.mjs is its command line, validate.mjs its test and
// podman-kube.mjs turns the same objects into what `podman kube play` runs.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import yaml from "js-yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceRoot = path.resolve(here, "..", "..");
export const manifestDir = path.join(sourceRoot, "deploy", "k8s");

// The project's version (meson.build), which the image is tagged with.
export function projectVersion(root = sourceRoot) {
  const text = fs.readFileSync(path.join(root, "meson.build"), "utf8");
  const m = text.match(/^\s*version\s*:\s*'([^']+)'/m);
  if (!m) throw new Error("no version in meson.build");
  return m[1];
}

// Every object of every .yaml file under dir (one level of subfolders: the
// optional components), as {file, doc}, files in name order.
export function loadManifests(dir = manifestDir) {
  const files = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name.localeCompare(b.name))) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      for (const sub of fs.readdirSync(p).sort())
        if (sub.endsWith(".yaml")) files.push(path.join(p, sub));
    } else if (entry.name.endsWith(".yaml")) {
      files.push(p);
    }
  }
  const objects = [];
  for (const file of files) {
    const rel = path.relative(dir, file);
    yaml.loadAll(fs.readFileSync(file, "utf8"), (doc) => {
      if (doc !== null && doc !== undefined) objects.push({ file: rel, doc });
    });
  }
  return objects;
}

// The kubernetes-models class of an object's apiVersion and kind, or null.
async function modelClass(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  const parts = apiVersion.split("/");
  const module = parts.length === 1 ? `kubernetes-models/${parts[0]}` :
    `kubernetes-models/${parts[0]}/${parts[1]}`;
  try {
    const mod = await import(module);
    return typeof mod[kind] === "function" ? mod[kind] : null;
  } catch {
    return null;
  }
}

// Schema errors of one object: [] when it is valid.
export async function schemaErrors(doc) {
  const Model = await modelClass(doc?.apiVersion, doc?.kind);
  if (!Model) return [`unknown apiVersion/kind ${doc?.apiVersion}/${doc?.kind}`];
  try {
    new Model(doc).validate();
    return [];
  } catch (e) {
    return [e.message];
  }
}

const PROBES = {
  // role: the service its probe must ask and the port it serves
  learner: { service: "control", port: 5582 },
  env: { service: "env", port: 5570 },
  reward: { service: "reward", port: 5560 },
};
const ROLES = ["learner", "env", "actor", "reward"];
const WORKLOADS = ["Deployment", "StatefulSet"];

const labelsMatch = (selector, labels) =>
  !!selector && Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

// The role a container runs (`agora-pod ROLE`), or null.
function roleOf(container) {
  const cmd = [...(container.command ?? []), ...(container.args ?? [])];
  return cmd[0] === "agora-pod" && ROLES.includes(cmd[1]) ? cmd[1] : null;
}

// The `agora probe SERVICE tcp://127.0.0.1:PORT` a probe runs (or agora-pod's,
// which passes for a finished learner), or null. No shell: podman runs a
// probe's words joined by spaces through sh -c, so quoting would not survive.
function probeTarget(probe) {
  const line = (probe?.exec?.command ?? []).join(" ");
  const m = line.match(/^agora(?:-pod)? probe (\w+) tcp:\/\/127\.0\.0\.1:(\d+)(?: |$)/);
  return m ? { service: m[1], port: Number(m[2]) } : null;
}

// Errors of the whole set of objects against agora's rules; ctx gives
// {version, runIni} (the image's version and examples/smoke.ini's text).
export function agoraErrors(objects, ctx) {
  const errors = [];
  const err = (o, msg) => errors.push(`${o.file}: ${o.doc.kind} ${o.doc.metadata?.name}: ${msg}`);
  const byKind = (kind) => objects.filter((o) => o.doc.kind === kind);
  const seen = new Set();
  for (const o of objects) {
    const key = `${o.doc.kind}/${o.doc.metadata?.name}`;
    if (seen.has(key)) err(o, "defined twice");
    seen.add(key);
  }
  const configMaps = new Map(byKind("ConfigMap").map((o) => [o.doc.metadata.name, o.doc]));
  const workloads = objects.filter((o) => WORKLOADS.includes(o.doc.kind));
  const services = byKind("Service");
  const image = `localhost/agora:${ctx.version}`;

  for (const w of workloads) {
    const spec = w.doc.spec ?? {};
    const tpl = spec.template ?? {};
    const labels = tpl.metadata?.labels ?? {};
    if (!labelsMatch(spec.selector?.matchLabels, labels))
      err(w, "spec.selector.matchLabels does not select the pod template's labels");
    const volumes = new Set((tpl.spec?.volumes ?? []).map((v) => v.name));
    for (const c of spec.volumeClaimTemplates ?? []) volumes.add(c.metadata?.name);
    for (const v of tpl.spec?.volumes ?? [])
      if (v.configMap && !configMaps.has(v.configMap.name))
        err(w, `volume ${v.name}: no ConfigMap ${v.configMap.name}`);
    const containers = [...(tpl.spec?.initContainers ?? []), ...(tpl.spec?.containers ?? [])];
    let roles = 0;
    for (const c of containers) {
      if (c.image !== image) err(w, `container ${c.name}: image ${c.image}, not ${image}`);
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.configMapKeyRef;
        if (ref && !(configMaps.get(ref.name)?.data && ref.key in configMaps.get(ref.name).data))
          err(w, `container ${c.name}: env ${e.name} names ${ref.name}/${ref.key}, which no ConfigMap has`);
      }
      for (const m of c.volumeMounts ?? [])
        if (!volumes.has(m.name)) err(w, `container ${c.name}: mounts ${m.name}, no such volume`);
      if (c.livenessProbe?.tcpSocket || c.readinessProbe?.tcpSocket)
        err(w, `container ${c.name}: a tcpSocket probe proves only that a port is open`);
    }
    for (const c of tpl.spec?.containers ?? []) {
      const role = roleOf(c);
      if (!role) {
        err(w, `container ${c.name}: its command is not agora-pod ${ROLES.join("|")}`);
        continue;
      }
      roles++;
      const want = PROBES[role];
      if (!want) continue;
      const ports = new Map((c.ports ?? []).map((p) => [p.containerPort, p.name]));
      if (!ports.has(want.port)) err(w, `container ${c.name}: ${role} serves ${want.port}, not declared`);
      for (const kind of ["readinessProbe", "livenessProbe"]) {
        const t = probeTarget(c[kind]);
        if (!t || t.service !== want.service || t.port !== want.port)
          err(w, `container ${c.name}: ${kind} must run agora probe ${want.service} tcp://127.0.0.1:${want.port}`);
      }
      if (role === "learner" || role === "reward") {
        const out = (c.env ?? []).find((e) => e.name === "AGORA_OUT")?.value ?? "/var/lib/agora";
        const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === out);
        const claims = (spec.volumeClaimTemplates ?? []).map((t) => t.metadata?.name);
        if (w.doc.kind !== "StatefulSet" || !mount || !claims.includes(mount.name))
          err(w, `container ${c.name}: ${out} (checkpoints, resume) must be a StatefulSet volume claim`);
      }
    }
    if (roles !== 1) err(w, `runs ${roles} agora processes, not one`);
    if (w.doc.kind === "StatefulSet") {
      const svc = services.find((s) => s.doc.metadata?.name === spec.serviceName);
      if (!svc || svc.doc.spec?.clusterIP !== "None")
        err(w, `serviceName ${spec.serviceName} is not a headless Service of this set`);
      else if (!labelsMatch(svc.doc.spec.selector, labels))
        err(w, `its headless Service ${spec.serviceName} does not select its pods`);
    }
  }

  for (const s of services) {
    const selected = workloads.filter((w) =>
      labelsMatch(s.doc.spec?.selector, w.doc.spec?.template?.metadata?.labels));
    if (selected.length !== 1) {
      err(s, `selects ${selected.length} workloads, not one`);
      continue;
    }
    const names = new Set();
    for (const c of selected[0].doc.spec.template.spec?.containers ?? [])
      for (const p of c.ports ?? []) names.add(p.name).add(p.containerPort);
    for (const p of s.doc.spec.ports ?? [])
      if (!names.has(p.targetPort ?? p.port))
        err(s, `port ${p.name}: target ${p.targetPort ?? p.port} is no port of ${selected[0].doc.metadata.name}`);
  }

  // The names in agora-cluster are the ones Kubernetes gives the pods.
  const cluster = byKind("ConfigMap").find((o) => o.doc.metadata?.name === "agora-cluster");
  const roleWorkload = (role) => workloads.find((w) =>
    (w.doc.spec?.template?.spec?.containers ?? []).some((c) => roleOf(c) === role));
  if (!cluster) {
    errors.push("no ConfigMap agora-cluster (the names the pods reach each other by)");
  } else {
    const data = cluster.doc.data ?? {};
    const learner = roleWorkload("learner");
    if (learner) {
      const want = `${learner.doc.metadata.name}-0.${learner.doc.spec?.serviceName}`;
      if (data.learner_host !== want) err(cluster, `learner_host is ${data.learner_host}, the learner pod is ${want}`);
    }
    const env = roleWorkload("env");
    const envSvc = env && services.find((s) =>
      labelsMatch(s.doc.spec?.selector, env.doc.spec?.template?.metadata?.labels));
    if (envSvc && data.env_host !== envSvc.doc.metadata.name)
      err(cluster, `env_host is ${data.env_host}, the env servers' Service is ${envSvc.doc.metadata.name}`);
    const reward = roleWorkload("reward");
    if (data.reward_host && !(reward && data.reward_host === `${reward.doc.metadata.name}-0.${reward.doc.spec?.serviceName}`))
      err(cluster, `reward_host ${data.reward_host} is no reward server of this set`);
  }
  const run = byKind("ConfigMap").find((o) => o.doc.metadata?.name === "agora-run");
  if (!run) errors.push("no ConfigMap agora-run (the run file)");
  else if (ctx.runIni !== undefined && run.doc.data?.["run.ini"] !== ctx.runIni)
    err(run, "run.ini differs from examples/smoke.ini");
  return errors;
}

// Every error of the objects: schema errors first, then agora's rules.
export async function checkManifests(objects, ctx) {
  const errors = [];
  for (const o of objects)
    for (const e of await schemaErrors(o.doc))
      errors.push(`${o.file}: ${o.doc?.kind} ${o.doc?.metadata?.name}: ${e}`);
  return errors.concat(agoraErrors(objects, ctx));
}

// The context of this source tree: its version and the smoke run file.
export function treeContext(root = sourceRoot) {
  return {
    version: projectVersion(root),
    runIni: fs.readFileSync(path.join(root, "examples", "smoke.ini"), "utf8"),
  };
}
