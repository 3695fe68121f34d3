// Sandbox shows descriptions to users: every type, field, argument and enum value has one.
import { getIntrospectionQuery, type IntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { expectData, startStack, type Stack } from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ simulator: { jobsPerOrganization: 0 } });
});
afterAll(() => stack.stop());

it('describes every type, field, argument, input field and enum value of the schema', async () => {
  const { __schema } = expectData(
    await stack.query<IntrospectionQuery>(getIntrospectionQuery({ inputValueDeprecation: true })),
  );
  const missing: string[] = [];
  const check = (where: string, description: string | null | undefined) => {
    if (!description?.trim()) missing.push(where);
  };
  for (const type of __schema.types) {
    if (type.name.startsWith('__') || ['String', 'Int', 'Float', 'Boolean', 'ID'].includes(type.name))
      continue;
    check(type.name, type.description);
    if ('fields' in type && type.fields) {
      for (const field of type.fields) {
        check(`${type.name}.${field.name}`, field.description);
        for (const arg of field.args) check(`${type.name}.${field.name}(${arg.name})`, arg.description);
      }
    }
    if ('inputFields' in type && type.inputFields) {
      for (const field of type.inputFields) check(`${type.name}.${field.name}`, field.description);
    }
    if ('enumValues' in type && type.enumValues) {
      for (const value of type.enumValues) check(`${type.name}.${value.name}`, value.description);
    }
  }
  expect(missing).toEqual([]);
  expect(__schema.types.length).toBeGreaterThan(10);
});
