/** Writes the generated documents: docs/configuration.md (from the schema) and the metrics table of docs/operations.md. */
import { readFileSync, writeFileSync } from 'node:fs';
import { renderConfigurationReference } from '../src/config/reference.js';
import { withMetricsReference } from '../src/observability/metrics-reference.js';

const configuration = new URL('../docs/configuration.md', import.meta.url);
writeFileSync(configuration, renderConfigurationReference());
console.log(`wrote ${configuration.pathname}`);

const operations = new URL('../docs/operations.md', import.meta.url);
writeFileSync(operations, withMetricsReference(readFileSync(operations, 'utf8')));
console.log(`wrote the metrics reference in ${operations.pathname}`);
