// Starts the de-identification engine: Pyodide, pydicom's wheel and the trials/deid sources, all from the
// bundle the build wrote into static/dist/deid/ (nothing from elsewhere). Used by the upload page's worker and
// by the test suite under Node, so both run the very same files.
//
//   const engine = await startEngine({ loadPyodide, base, read });
//   engine.configure(subjectKeyHex, subjectCode, options);
//   const { data, record } = engine.run(bytes);   // data: Uint8Array (empty when rejected)

export async function startEngine({ loadPyodide, base, read }) {
  const manifest = JSON.parse(new TextDecoder().decode(await read(`${base}manifest.json`)));
  const pyodide = await loadPyodide({ indexURL: `${base}pyodide/`, fullStdLib: false });
  pyodide.unpackArchive(new Uint8Array(await read(`${base}${manifest.wheel}`)), "wheel");
  for (const [path, text] of Object.entries(manifest.sources)) {
    const file = `/ctims/${path}`;
    pyodide.FS.mkdirTree(file.slice(0, file.lastIndexOf("/")));
    pyodide.FS.writeFile(file, text);
  }
  pyodide.runPython("import sys\nsys.path.insert(0, '/ctims')");
  const entry = pyodide.pyimport("ctims_deid_entry");
  return {
    version: manifest.version,
    configure(subjectKeyHex, subjectCode, options) {
      entry.configure(subjectKeyHex, subjectCode, JSON.stringify(options));
    },
    run(bytes) {
      const answer = entry.run(bytes);
      const output = answer.get(0);
      try {
        return { data: output.toJs(), record: JSON.parse(answer.get(1)) };
      } finally {
        output.destroy();
        answer.destroy();
      }
    },
  };
}
