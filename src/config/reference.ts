import type { z } from 'zod';
import { configSchema } from './schema.js';
import { defOf, literalValues, unwrap } from './schema-walk.js';

interface Row {
  key: string;
  type: string;
  required: boolean;
  defaultValue: string;
  description: string;
  example: string;
}

/** docs/configuration.md, rendered from the schema (`npm run docs` writes it; a test compares). */
export function renderConfigurationReference(): string {
  const sections = Object.entries(defOf(configSchema).shape!).map(([key, schema]) => renderSection(key, schema));
  return `${HEADER}\n${sections.join('\n')}`;
}

const HEADER = `# Configuration reference

<!-- Generated from src/config/schema.ts by \`npm run docs\`. Do not edit by hand: a test fails when this file is stale. -->

The bridge reads one YAML file (\`mqtt-amqp-bridge run --config FILE\`). Check a file without running
anything with \`mqtt-amqp-bridge validate FILE\`: it prints \`ok\` or every problem as \`FILE:LINE:COL: message\`.

- **Environment variables.** In every value, \`\${VAR}\` is replaced by the variable and \`\${VAR:-default}\` by the
  variable or, when it is unset or empty, by the default. A \`\${VAR}\` whose variable is unset is an error.
  \`$\${\` writes a literal \`\${\`. Substitution happens in values only (not in keys or comments), after the YAML
  syntax is read, so a variable's value can never change the structure of the file.
- **Numbers and booleans** may be written as strings: \`port: "\${MQTT_PORT:-1883}"\` is the number 1883.
- **Unknown keys are errors**, with a suggestion when the key looks like a typo.
- Keys marked *required* have no default. The loaded configuration is frozen.
- Templates and patterns are explained in [mapping.md](mapping.md).
`;

function renderSection(key: string, schema: z.ZodType): string {
  const field = unwrap(schema);
  const rows: Row[] = [];
  collect(key, schema, rows);
  const table = [
    '| Key | Type | Default | Description |',
    '| --- | --- | --- | --- |',
    ...rows.map(
      (row) =>
        `| \`${row.key}\` | ${row.type} | ${row.required ? '*required*' : row.defaultValue} | ${escape(row.description)}${row.example ? ` Example: ${row.example}` : ''} |`,
    ),
  ].join('\n');
  return `## \`${key}\`\n\n${field.meta.description ?? ''}\n\n${table}\n`;
}

/** Rows for a field and what it holds; `variant` (e.g. ` (type: redis)`) follows every key of a variant's fields. */
function collect(key: string, schema: z.ZodType, rows: Row[], variant = ''): void {
  const field = unwrap(schema);
  const def = defOf(field.schema);
  rows.push({
    key: `${key}${variant}`,
    type: typeName(field.schema),
    required: !field.optional && !field.hasDefault,
    defaultValue: def.type === 'object' ? '' : field.hasDefault ? code(field.defaultValue) : field.optional ? '(none)' : '',
    description: field.meta.description ?? '',
    example: field.meta.examples?.length ? field.meta.examples.map(code).join(', ') : '',
  });
  if (def.type === 'object') {
    for (const [child, childSchema] of Object.entries(def.shape!)) collect(`${key}.${child}`, childSchema, rows, variant);
  } else if (def.type === 'array') {
    collectElement(`${key}[]`, def.element!, rows, variant);
  } else if (def.type === 'union' && def.discriminator) {
    collectVariants(key, def, rows);
  } else if (def.type === 'union' && !def.discriminator) {
    // Either form of the field: a list's entries, an object's keys.
    for (const option of def.options ?? []) {
      const optionDef = defOf(unwrap(option).schema);
      if (optionDef.type === 'array') collectElement(`${key}[]`, optionDef.element!, rows);
      else if (optionDef.type === 'object') {
        for (const [child, childSchema] of Object.entries(optionDef.shape!)) {
          if (defOf(unwrap(childSchema).schema).type !== 'array') collect(`${key}.${child}`, childSchema, rows);
          else rows.push({ key: `${key}.${child}`, type: typeName(unwrap(childSchema).schema), required: true, defaultValue: '', description: unwrap(childSchema).meta.description ?? '', example: '' });
        }
      }
    }
  }
}

function collectElement(key: string, schema: z.ZodType, rows: Row[], variant = ''): void {
  const element = unwrap(schema).schema;
  const def = defOf(element);
  if (def.type === 'object') {
    for (const [child, childSchema] of Object.entries(def.shape!)) collect(`${key}.${child}`, childSchema, rows, variant);
  } else if (def.type === 'union' && def.discriminator) {
    collectVariants(key, def, rows);
  }
}

/** The fields of an object chosen by a discriminator (`type`): the discriminator, then each variant's own keys. */
function collectVariants(key: string, def: ReturnType<typeof defOf>, rows: Row[]): void {
  const discriminator = def.discriminator!;
  const options = def.options ?? [];
  const tags = options.map((option) => String(literalValues(defOf(option).shape![discriminator]!)[0]));
  rows.push({
    key: `${key}.${discriminator}`,
    type: tags.map((tag) => `\`${tag}\``).join(' \\| '),
    required: true,
    defaultValue: '',
    description: options.map((option, i) => `\`${tags[i]}\`: ${unwrap(defOf(option).shape![discriminator]!).meta.description ?? ''}`).join(' '),
    example: '',
  });
  options.forEach((option, i) => {
    for (const [child, childSchema] of Object.entries(defOf(option).shape!)) {
      if (child !== discriminator) collect(`${key}.${child}`, childSchema, rows, ` (${discriminator}: ${tags[i]})`);
    }
  });
}

function typeName(schema: z.ZodType): string {
  const def = defOf(schema);
  switch (def.type) {
    case 'string':
      return 'string';
    case 'number': {
      const number = schema as unknown as { isInt: boolean; minValue: number | null; maxValue: number | null };
      return `${number.isInt ? 'integer' : 'number'}${numberBounds(number.minValue, number.maxValue)}`;
    }
    case 'boolean':
      return 'boolean';
    case 'enum':
    case 'literal':
      return literalValues(schema).map((value) => `\`${String(value)}\``).join(' \\| ');
    case 'array': {
      const element = unwrap(def.element!).schema;
      const elementDef = defOf(element);
      if (elementDef.type === 'union' && elementDef.discriminator) return `list of objects by \`${elementDef.discriminator}\``;
      return `list of ${elementDef.type === 'object' ? 'objects' : typeName(element)}`;
    }
    case 'record':
      return `map of string to ${typeName(unwrap(def.valueType!).schema)}`;
    case 'object':
      return 'object';
    case 'union':
      if (def.discriminator) return `object by \`${def.discriminator}\``;
      return (def.options ?? []).map((option) => typeName(unwrap(option).schema)).join(' or ');
    default:
      return def.type;
  }
}

function numberBounds(min: number | null, max: number | null): string {
  const finite = (n: number | null): n is number => n !== null && Math.abs(n) < Number.MAX_SAFE_INTEGER;
  const show = (n: number) => n.toLocaleString('en-US');
  if (finite(min) && finite(max)) return `, ${show(min)} to ${show(max)}`;
  if (finite(min)) return `, at least ${show(min)}`;
  return '';
}

function code(value: unknown): string {
  return `\`${JSON.stringify(value)}\``;
}

function escape(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}
