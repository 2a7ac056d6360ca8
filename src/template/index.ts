export { TemplateEngine, TEMPLATE_FIELDS, TEMPLATE_ROOTS } from './template-engine.js';
export type {
  CompiledTemplate,
  TemplateLocator,
  TemplateScope,
  TemplateVariable,
} from './template-engine.js';
