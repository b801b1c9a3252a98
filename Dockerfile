# roiserve container image.
#
#   docker build -t roiserve .                              # Node 24, the current LTS
#   docker build --build-arg NODE_MAJOR=22 -t roiserve .    # another Node major
#   docker run --rm -p 8080:8080 roiserve
#
# Stages: deps (all packages, no install scripts) -> build (tsc to dist/) and prod-deps
# (`npm ci --omit=dev` with install scripts, trimmed) -> runtime (node:<major>-bookworm-slim, non-root).
# Plain Dockerfile syntax only (no `# syntax=` line, no RUN --mount), so the legacy builder and
# BuildKit both build it and no frontend image has to be pulled.
# glibc (bookworm), not alpine: sharp's prebuilt libvips and tfjs-node's libtensorflow need it.
# NODE_MAJOR: the Node.js major the image runs, by default the current LTS (24; Node 20 is out of
# support since April 2026). It is what CI's smoke test builds and runs (.ci/run passes the same major
# to the local base tool). NODE_IMAGE overrides the whole base reference (a mirror, a digest pin).
ARG NODE_MAJOR=24
ARG NODE_IMAGE=node:${NODE_MAJOR}-bookworm-slim

# ---------------------------------------------------------------- deps: everything tsc needs
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# ONNXRUNTIME_NODE_INSTALL=skip: onnxruntime-node's install script would download its CUDA provider;
# the project denies that script in package.json `allowScripts`, which npm reads from 11.16 on (Node
# 24's bundled npm does) but older npm does not (Node 20's and 22's npm 10), and .npmrc says skip too;
# the variable keeps it off whatever npm and .npmrc do. The service runs ONNX Runtime on the CPU.
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false \
    ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: the compiler needs no native binaries, so no downloads (tfjs-node, onnxruntime-node)
# are attempted here. The npm cache this fills lets prod-deps install offline from the same tarballs.
RUN npm ci --ignore-scripts

# ---------------------------------------------------------------- prod-deps: runtime node_modules
FROM deps AS prod-deps
# A real `npm ci --omit=dev` with install scripts (as package.json `allowScripts` permits them on npm
# >= 11.16; npm 10 ignores that field, and ONNXRUNTIME_NODE_INSTALL above keeps onnxruntime-node's
# download off there, though it is a devDependency anyway).
# @tensorflow/tfjs-node is an optionalDependency: its install script downloads libtensorflow. Where the
# network allows it the image gets the native backend; where it fails npm drops the package and the
# service uses the wasm backend. Either way the build goes on; the log line below says which.
RUN rm -rf node_modules \
 && npm ci --omit=dev --prefer-offline \
 && if [ -f node_modules/@tensorflow/tfjs-node/package.json ]; then \
      echo "tfjs-node: installed (native TensorFlow backend available)"; \
    else \
      echo "tfjs-node: not installed (libtensorflow download unavailable); the service uses the wasm backend"; \
    fi \
 # Trim what Node never loads at run time: source maps, type declarations, build info, and
 # TensorFlow.js's browser bundles (Node loads each package's `main`, the *.node.js bundle).
 && find node_modules -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \
      -o -name '*.tsbuildinfo' \) -delete \
 && find node_modules/@tensorflow -type f -path '*/dist/*' ! -path '*/tfjs-node/*' \( -name '*.min.js' -o -name '*.es2017.js' \
      -o -name '*.fesm.js' -o -name '*.min.js.html' -o -name 'tf.js' -o -name 'tf-*.js' \) \
      ! -name '*.node.js' -delete \
 # sharp's wasm fallback is only loaded when no native build fits the platform.
 && if ls -d node_modules/@img/sharp-linux-* >/dev/null 2>&1; then rm -rf node_modules/@img/sharp-wasm32; fi \
 # onnxruntime-node ships its native binaries for every platform (~290 MB: linux, darwin and win32, x64
 # and arm64); keep only this image's (linux/x64 or linux/arm64, ~45 MB), the one its loader picks
 # (dist/binding.js: bin/napi-v6/<process.platform>/<process.arch>).
 && ort=node_modules/onnxruntime-node/bin/napi-v6 \
 && keep="$(node -p 'process.platform + "/" + process.arch')" \
 && test -f "$ort/$keep/onnxruntime_binding.node" \
 && find "$ort" -mindepth 2 -maxdepth 2 -type d ! -path "$ort/$keep" -exec rm -rf {} + \
 && find "$ort" -mindepth 1 -maxdepth 1 -type d ! -path "$ort/${keep%%/*}" -exec rm -rf {} + \
 # TensorFlow.js in Node loads each package's `main`, one self-contained bundle (dist/*.node.js, which
 # requires only other packages' mains): the per-file ES module tree beside it is for bundlers (~25 MB).
 # tfjs-node is left whole. core-js (14 MB) is a dependency of @tensorflow/tfjs that none of those
 # bundles requires (its browser builds' polyfills).
 && node -e ' \
      const fs = require("fs"), path = require("path"), root = "node_modules/@tensorflow"; \
      for (const name of fs.readdirSync(root)) { \
        if (name === "tfjs-node") continue; \
        const dir = path.join(root, name), dist = path.join(dir, "dist"); \
        const main = path.join(dir, JSON.parse(fs.readFileSync(path.join(dir, "package.json"))).main); \
        if (!fs.existsSync(main)) throw new Error("no main file " + main); \
        const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { \
          const f = path.join(d, e.name); \
          if (e.isDirectory()) walk(f); else if (f.endsWith(".js") && f !== main) fs.rmSync(f); } }; \
        if (fs.existsSync(dist)) walk(dist); \
      }' \
 && find node_modules/@tensorflow -type d -empty -delete \
 && rm -rf node_modules/core-js \
 # Packages' own test suites and zod's TypeScript sources (its exports point at the built .js/.cjs; the
 # "@zod/source" condition Node never uses): ~10 MB no code requires.
 && find node_modules -mindepth 2 -maxdepth 3 -type d \( -name test -o -name tests -o -name __tests__ \) -prune \
      -exec rm -rf {} + \
 && rm -rf node_modules/zod/src

# ---------------------------------------------------------------- build: TypeScript -> dist/
FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY routes ./routes
RUN npm run build

# ---------------------------------------------------------------- runtime
FROM ${NODE_IMAGE} AS runtime
# tini: PID 1 that forwards SIGTERM/SIGINT to node and reaps zombies, so `docker stop` drains requests.
# fonts-dejavu-core: a system font for any text the visual diffs render (they also embed DejaVu Sans).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Configuration is by environment only (see README). SHUTDOWN_GRACE_SECONDS stays under the 10 s
# that `docker stop` waits before SIGKILL, so in-flight requests finish and the exit code is 0.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    SHUTDOWN_GRACE_SECONDS=8
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY public ./public
# Files stay root-owned and read-only to the service user.
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/main.js"]
