/** Writes the generated documents: docs/configuration.md (from the schema). */
import { writeFileSync } from 'node:fs';
import { renderConfigurationReference } from '../src/config/reference.js';

const target = new URL('../docs/configuration.md', import.meta.url);
writeFileSync(target, renderConfigurationReference());
console.log(`wrote ${target.pathname}`);
