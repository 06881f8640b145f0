import type { z } from 'zod';

/** Read-only introspection of the zod schema, for error hints and the generated reference. */

type AnySchema = z.ZodType;

interface Def {
  type: string;
  innerType?: AnySchema;
  out?: AnySchema;
  in?: AnySchema;
  shape?: Record<string, AnySchema>;
  element?: AnySchema;
  options?: AnySchema[];
  discriminator?: string;
  valueType?: AnySchema;
  keyType?: AnySchema;
  entries?: Record<string, string>;
  values?: unknown[];
  defaultValue?: unknown;
  checks?: Array<{ _zod: { def: Record<string, unknown> } }>;
}

export function defOf(schema: AnySchema): Def {
  return (schema as unknown as { def: Def }).def;
}

export interface FieldMeta {
  description?: string;
  examples?: unknown[];
  title?: string;
}

export function metaOf(schema: AnySchema): FieldMeta {
  return ((schema as unknown as { meta(): FieldMeta | undefined }).meta() ?? {});
}

export interface Unwrapped {
  schema: AnySchema;
  optional: boolean;
  defaultValue: unknown;
  hasDefault: boolean;
  meta: FieldMeta;
}

/** Strips optional/default/preprocess wrappers, collecting what they say about the field. */
export function unwrap(schema: AnySchema): Unwrapped {
  let current = schema;
  let optional = false;
  let hasDefault = false;
  let defaultValue: unknown;
  let meta: FieldMeta = { ...metaOf(schema) };
  for (;;) {
    const def = defOf(current);
    if (def.type === 'optional' || def.type === 'nullable' || def.type === 'readonly') {
      if (def.type === 'optional') optional = true;
      current = def.innerType!;
    } else if (def.type === 'default' || def.type === 'prefault') {
      if (!hasDefault) {
        hasDefault = true;
        defaultValue = typeof def.defaultValue === 'function' ? (def.defaultValue as () => unknown)() : def.defaultValue;
      }
      current = def.innerType!;
    } else if (def.type === 'pipe') {
      current = defOf(def.out!).type === 'transform' ? def.in! : def.out!;
    } else {
      break;
    }
    meta = { ...metaOf(current), ...meta };
  }
  return { schema: current, optional, defaultValue, hasDefault, meta };
}

/** The object schema found by following `path` through the data, or null. */
export function objectSchemaAt(root: AnySchema, path: readonly PropertyKey[], data: unknown): AnySchema | null {
  let schema: AnySchema | null = resolveUnion(unwrap(root).schema, data);
  let value = data;
  for (const key of path) {
    if (!schema) return null;
    const def = defOf(schema);
    if (def.type === 'object' && typeof key === 'string') {
      const next = def.shape![key];
      value = (value as Record<string, unknown> | undefined)?.[key];
      schema = next ? resolveUnion(unwrap(next).schema, value) : null;
    } else if (def.type === 'array' && typeof key === 'number') {
      value = (value as unknown[] | undefined)?.[key];
      schema = resolveUnion(unwrap(def.element!).schema, value);
    } else if (def.type === 'record') {
      value = (value as Record<string, unknown> | undefined)?.[String(key)];
      schema = resolveUnion(unwrap(def.valueType!).schema, value);
    } else {
      return null;
    }
  }
  return schema;
}

function resolveUnion(schema: AnySchema, value: unknown): AnySchema | null {
  const def = defOf(schema);
  if (def.type !== 'union') return schema;
  const discriminator = def.discriminator;
  if (!discriminator || typeof value !== 'object' || value === null) return null;
  const tag = (value as Record<string, unknown>)[discriminator];
  for (const option of def.options ?? []) {
    const field = defOf(option).shape?.[discriminator];
    if (field && literalValues(field).includes(tag)) return option;
  }
  return null;
}

export function literalValues(schema: AnySchema): unknown[] {
  const def = defOf(unwrap(schema).schema);
  if (def.type === 'literal') return def.values ?? [];
  if (def.type === 'enum') return Object.values(def.entries ?? {});
  return [];
}

export function shapeKeys(schema: AnySchema): string[] {
  const def = defOf(schema);
  return def.type === 'object' ? Object.keys(def.shape ?? {}) : [];
}
