// Schema-first types: `npm run codegen` writes src/generated/graphql.ts from schema/*.graphql.
// Mappers make every resolver receive the upstream record (snake_case) it resolves from.
import type { CodegenConfig } from '@graphql-codegen/cli';

const records = '../upstream/records.js';

const config: CodegenConfig = {
  // The federation file too, so `__resolveReference` is typed (`federation: true`).
  schema: ['schema/*.graphql', 'schema/federation/*.graphql'],
  generates: {
    'src/generated/graphql.ts': {
      plugins: ['typescript', 'typescript-resolvers'],
      config: {
        useTypeImports: true,
        federation: true,
        useIndexSignature: true,
        enumsAsTypes: true,
        strictScalars: true,
        // `_FieldSet` comes with the federation directives; it only types `@key(fields:)`.
        scalars: { DateTime: 'string', JSONObject: 'Record<string, unknown>', _FieldSet: 'string' },
        contextType: '../context.js#GatewayContext',
        mappers: {
          FineTuneJob: `${records}#FineTuneJobRecord`,
          FineTuneJobConfig: `${records}#FineTuneJobConfigRecord`,
          FineTuneDataset: `${records}#FineTuneDatasetRecord`,
          FineTuneJobMetrics: `${records}#FineTuneJobMetricsRecord`,
          FineTuneMetricEntry: `${records}#FineTuneMetricEntryRecord`,
        },
      },
    },
  },
};

export default config;
