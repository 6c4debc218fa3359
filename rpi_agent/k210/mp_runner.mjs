// Run a MicroPython script under node with the WebAssembly port, with host files copied in.
// Usage: node mp_runner.mjs JOB.json
//   JOB = {"micropython": "<path of micropython.mjs>", "heapsize": bytes,
//          "files": {"<guest path>": "<host path>", ...}, "path": ["/lib", ...],
//          "script": "<host path of the script to run as __main__>"}
// Exit status: 0 when the script finished, 1 on an uncaught Python exception (printed to stderr).
import fs from "fs";
import path from "path";
import url from "url";

const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const { loadMicroPython } = await import(url.pathToFileURL(job.micropython).href);
const mp = await loadMicroPython({
  heapsize: job.heapsize || 8 * 1024 * 1024,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});
for (const [guest, host] of Object.entries(job.files || {})) {
  mp.FS.mkdirTree(path.posix.dirname(guest));
  mp.FS.writeFile(guest, fs.readFileSync(host));
}
const prelude = "import sys\n" + (job.path || []).map((p) => `sys.path.insert(0, ${JSON.stringify(p)})\n`).join("");
try {
  mp.runPython(prelude);
  mp.runPython(fs.readFileSync(job.script, "utf8"));
} catch (error) {
  if (error.name !== "PythonError") throw error;
  if (error.type !== "SystemExit") {
    process.stderr.write(error.message + "\n");
    process.exit(1);
  }
}
