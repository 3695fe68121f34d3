// The SDL in schema/*.graphql, read once at start. The folder sits beside src/ and dist/, so
// the same relative path works from the sources and from the build.
import { readdirSync, readFileSync } from 'node:fs';

const schemaDir = new URL('../schema/', import.meta.url);

export function loadTypeDefs(): string[] {
  return readdirSync(schemaDir)
    .filter((file) => file.endsWith('.graphql'))
    .sort()
    .map((file) => readFileSync(new URL(file, schemaDir), 'utf8'));
}
