import { defineConfig } from "vitest/config";

// Preact via the automatic JSX runtime, configured on Vite's built-in (Oxc)
// transform. No framework plugin is needed (see README.md).
export default defineConfig({
  base: "/",
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2020",
  },
  server: {
    proxy: {
      "/api": { target: process.env.HAPI_HUB_URL ?? "http://127.0.0.1:7600", ws: true },
      "/health": { target: process.env.HAPI_HUB_URL ?? "http://127.0.0.1:7600" },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
