// Scope policies: the schema's `@requiresScopes` (the mutations need `jobs:write`) and the fields
// an operator adds (auth.requiredScopes), checked in `didResolveOperation`, after validation and
// before anything runs, so a refused operation makes no upstream call, over HTTP, WebSocket and
// in batches alike. Only a verified token carries scopes: without JWT authentication, and for an
// API key (the organization's own), no policy applies.
import type { ApolloServerPlugin } from '@apollo/server';
import {
  Kind,
  getNamedType,
  isInterfaceType,
  isObjectType,
  valueFromASTUntyped,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';
import type { GatewayContext } from '../../context.js';
import { ErrorCode, gatewayError } from '../../errors.js';

/** Any inner list, all of its scopes (Apollo Router's shape). */
type ScopeRequirement = readonly (readonly string[])[];

/** `Type.field` → the requirements it must meet, every one of them. */
type Policies = ReadonlyMap<string, ScopeRequirement[]>;

/** The schema's `@requiresScopes`, plus the operator's; an operator's unknown field stops the start. */
export function scopePolicies(
  schema: GraphQLSchema,
  requiredScopes: Readonly<Record<string, string[][]>>,
): Policies {
  const policies = new Map<string, ScopeRequirement[]>();
  const add = (coordinate: string, requirement: ScopeRequirement) =>
    policies.set(coordinate, [...(policies.get(coordinate) ?? []), requirement]);
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) && !isInterfaceType(type)) continue;
    for (const field of Object.values(type.getFields())) {
      for (const directive of field.astNode?.directives ?? []) {
        if (directive.name.value !== 'requiresScopes') continue;
        const scopes = directive.arguments?.find((a) => a.name.value === 'scopes');
        if (scopes) add(`${type.name}.${field.name}`, valueFromASTUntyped(scopes.value) as string[][]);
      }
    }
  }
  for (const [coordinate, requirement] of Object.entries(requiredScopes)) {
    const [typeName, fieldName] = coordinate.split('.') as [string, string];
    const type = schema.getType(typeName);
    if (!(isObjectType(type) || isInterfaceType(type)) || !type.getFields()[fieldName]) {
      throw new Error(`auth.requiredScopes: the schema has no field ${coordinate}`);
    }
    add(coordinate, requirement);
  }
  return policies;
}

/** Every `Type.field` the selection reaches, through its fragments (each followed once). */
function selectedFields(
  schema: GraphQLSchema,
  type: GraphQLCompositeType,
  selectionSet: SelectionSetNode,
  fragments: Record<string, FragmentDefinitionNode>,
  seen: Set<string>,
  found: Set<string>,
): void {
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      if (!isObjectType(type) && !isInterfaceType(type)) continue;
      const field = type.getFields()[selection.name.value];
      if (!field) continue; // __typename and introspection
      found.add(`${type.name}.${field.name}`);
      if (selection.selectionSet) {
        const fieldType = getNamedType(field.type) as GraphQLCompositeType;
        selectedFields(schema, fieldType, selection.selectionSet, fragments, seen, found);
      }
      continue;
    }
    const fragment = selection.kind === Kind.INLINE_FRAGMENT ? selection : fragments[selection.name.value];
    if (selection.kind === Kind.FRAGMENT_SPREAD) {
      if (seen.has(selection.name.value)) continue;
      seen.add(selection.name.value);
    }
    if (!fragment) continue;
    const condition = fragment.typeCondition
      ? (schema.getType(fragment.typeCondition.name.value) as GraphQLCompositeType | undefined)
      : type;
    selectedFields(schema, condition ?? type, fragment.selectionSet, fragments, seen, found);
  }
}

const listed = (scopes: readonly string[]) => scopes.map((s) => `\`${s}\``).join(' and ');

export function scopePoliciesPlugin(
  schema: GraphQLSchema,
  policies: Policies,
): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ contextValue, operation, document }) {
          const held = contextValue.operation.caller.scopes;
          if (held === undefined || policies.size === 0 || !operation) return;
          const root = schema.getRootType(operation.operation);
          if (!root) return;
          const fragments: Record<string, FragmentDefinitionNode> = {};
          for (const definition of document.definitions) {
            if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments[definition.name.value] = definition;
          }
          const found = new Set<string>();
          selectedFields(schema, root, operation.selectionSet, fragments, new Set(), found);
          for (const coordinate of found) {
            for (const requirement of policies.get(coordinate) ?? []) {
              if (requirement.some((scopes) => scopes.every((s) => held.includes(s)))) continue;
              const missing = requirement.map((scopes) => listed(scopes.filter((s) => !held.includes(s))));
              throw gatewayError(
                ErrorCode.FORBIDDEN,
                `${coordinate} needs the scope ${missing.join(', or ')}, which the token does not carry.`,
                { field: coordinate, requiredScopes: requirement },
              );
            }
          }
        },
      };
    },
  };
}
