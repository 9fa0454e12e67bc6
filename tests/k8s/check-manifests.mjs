// check-manifests.mjs [DIR]: checks the Kubernetes manifests of DIR (default
// deploy/k8s/) against the API schemas and agora's rules (manifests.mjs).
// Prints each object checked, then each error; exits 1 on any error.
import { checkManifests, loadManifests, manifestDir, treeContext } from "./manifests.mjs";

const dir = process.argv[2] ?? manifestDir;
const objects = loadManifests(dir);
if (objects.length === 0) {
  console.error(`check-manifests: no objects in ${dir}`);
  process.exit(1);
}
for (const o of objects) console.log(`${o.file}: ${o.doc.apiVersion} ${o.doc.kind} ${o.doc.metadata?.name}`);
const errors = await checkManifests(objects, treeContext());
for (const e of errors) console.error(`error: ${e}`);
console.log(errors.length ? `${errors.length} errors in ${dir}` : `${objects.length} objects valid`);
process.exit(errors.length ? 1 : 0);
