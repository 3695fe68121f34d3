// The tools an assistant is offered: one per GraphQL operation, from a folder of `.graphql` files
// (mcp.operations; the project's own `mcp-tools/`) and, with mcp.trustedDocumentTools, from the
// trusted documents. A file is a tool: its name (`list_jobs.graphql`) is the tool's, its leading
// comment the description, its variables the input schema; a line `# annotations: {…}` in that
// comment sets MCP's hints (`destructiveHint`, `idempotentHint`, `openWorldHint`, `title`).
// Every file is checked against the schema when the gateway starts: a bad one stops the start.
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Kind,
  OperationTypeNode,
  parse,
  validate,
  type DocumentNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import { z } from 'zod';
import { ConfigError } from '../config.js';
import { operationInputSchema, type ToolInputSchema } from './input-schema.js';

/** The folder of operations shipped with the gateway, beside `src/` (and `dist/`). */
export const SHIPPED_OPERATIONS = fileURLToPath(new URL('../../mcp-tools/', import.meta.url));

/** MCP's hints about what a tool does (ToolAnnotations), all optional. */
export interface ToolAnnotations {
  title?: string;
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
  openWorldHint?: boolean;
}

/** A tool that runs one GraphQL operation through the pipeline. */
export interface OperationTool {
  /** snake_case, as MCP tools are usually named: the file's name. */
  name: string;
  description: string;
  inputSchema: ToolInputSchema;
  annotations: ToolAnnotations;
  /** A mutation tool is offered only with mcp.mutations. */
  kind: 'query' | 'mutation';
  /** The document as the file has it: sent as is, so a trusted-documents list can name it. */
  query: string;
  operationName: string | undefined;
  /** Where it came from, for messages: the file, or the trusted document. */
  source: string;
}

const TOOL_NAME = /^[a-z][a-z0-9_]{0,63}$/;

const annotationsLine = /^annotations:\s*(\{.*\})\s*$/;
const annotationsSchema = z.strictObject({
  title: z.string().min(1).optional(),
  destructiveHint: z.boolean().optional(),
  idempotentHint: z.boolean().optional(),
  openWorldHint: z.boolean().optional(),
});

/** The `#` lines before the first definition: the description, and the annotations line. */
function leadingComment(text: string, source: string): { description: string; annotations: ToolAnnotations } {
  const lines: string[] = [];
  let annotations: ToolAnnotations = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') {
      if (lines.length > 0) break;
      continue;
    }
    if (!line.startsWith('#')) break;
    const comment = line.replace(/^#\s?/, '');
    const hints = annotationsLine.exec(comment);
    if (hints === null) {
      lines.push(comment);
      continue;
    }
    let parsed;
    try {
      parsed = annotationsSchema.safeParse(JSON.parse(hints[1]!));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) {
      throw new ConfigError(
        `${source}: the annotations line must be JSON with only title, destructiveHint, idempotentHint and openWorldHint`,
      );
    }
    annotations = parsed.data;
  }
  return { description: lines.join(' ').replace(/\s+/g, ' ').trim(), annotations };
}

/**
 * The tool of one document, or the reason it cannot be one. The document must validate against
 * the schema and hold exactly one query or mutation (fragments beside it are fine).
 */
export function operationTool(
  schema: GraphQLSchema,
  name: string,
  text: string,
  source: string,
): OperationTool | { error: string } {
  let document: DocumentNode;
  try {
    document = parse(text);
  } catch (error) {
    return { error: `${source} is not a GraphQL document: ${(error as Error).message}` };
  }
  const operations = document.definitions.filter(
    (definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION,
  );
  if (operations.length !== 1) {
    return { error: `${source} must hold exactly one operation (it has ${operations.length})` };
  }
  const operation = operations[0]!;
  if (operation.operation === OperationTypeNode.SUBSCRIPTION) {
    return {
      error: `${source} is a subscription: a tool answers once, so only queries and mutations are tools`,
    };
  }
  const errors = validate(schema, document);
  if (errors.length > 0) return { error: `${source} does not match the schema: ${errors[0]!.message}` };
  const kind = operation.operation === OperationTypeNode.MUTATION ? 'mutation' : 'query';
  const comment = leadingComment(text, source);
  const operationName = operation.name?.value;
  return {
    name,
    description: comment.description || `Runs the GraphQL ${kind} ${operationName ?? name}.`,
    inputSchema: operationInputSchema(schema, document, operation),
    // A query only reads; the upstream is one closed API, not the open world.
    annotations:
      kind === 'query'
        ? { readOnlyHint: true, openWorldHint: false, ...comment.annotations }
        : { readOnlyHint: false, openWorldHint: false, ...comment.annotations },
    kind,
    query: text,
    operationName,
    source,
  };
}

/** The tools of a folder's `.graphql` files, by name; any file that is not a tool stops the start. */
export function loadOperationTools(schema: GraphQLSchema, folder: string): OperationTool[] {
  let files: string[];
  try {
    files = readdirSync(folder).filter((file) => file.endsWith('.graphql'));
  } catch (error) {
    throw new ConfigError(
      `mcp.operations: cannot read the folder ${folder} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  return files.sort().map((file) => {
    const source = join(folder, file);
    const name = basename(file, '.graphql');
    if (!TOOL_NAME.test(name)) {
      throw new ConfigError(
        `mcp.operations: ${source}: a tool's file is named in snake_case (a-z, 0-9, _; 64 at most), e.g. list_jobs.graphql`,
      );
    }
    const tool = operationTool(schema, name, readFileSync(source, 'utf8'), source);
    if ('error' in tool) throw new ConfigError(`mcp.operations: ${tool.error}`);
    return tool;
  });
}

/** The operation a request runs: the one named, or the document's only one. */
export function operationOf(document: DocumentNode, operationName: string | undefined) {
  const operations = document.definitions.filter(
    (definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION,
  );
  return operationName === undefined
    ? operations.length === 1
      ? operations[0]
      : undefined
    : operations.find((operation) => operation.name?.value === operationName);
}

/** `RecentJobs` → `recent_jobs`: a trusted document's tool name, from its operation's name. */
export function snakeCase(operationName: string): string {
  return operationName
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}
