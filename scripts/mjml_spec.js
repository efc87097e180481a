// Writes MJML's own component definitions as JSON: every tag, its allowed attributes, the tags
// allowed inside it, and whether its content is raw HTML (an "ending tag").
// mjml-python (mrml) compiles the same MJML 4 components into Rust and exposes none of this, so
// the list comes from the JavaScript reference implementation. `make mjml-spec` runs it in a
// scratch folder after `npm install mjml@VERSION`; the output is committed
// (newsletter/digest/check/mjml_spec.json) so a build needs neither node nor the network.
const mjml = require('mjml');  // registers the core components and their dependencies
const core = require('mjml-core');
const { dependencies } = require('mjml-validator');

const tags = {};
for (const [name, comp] of Object.entries(core.components)) {
  tags[name] = {
    attributes: Object.keys(comp.allowedAttributes || {}).sort(),
    children: (dependencies[name] || []).map(String).sort(),
    ending: !!comp.endingTag,
  };
}
// Tags the validator knows without a component class (validTag.js, dependencies): the root,
// mj-include (resolved before validation), and the children of mj-attributes/mj-html-attributes.
tags['mjml'] = { attributes: ['dir', 'lang', 'owa'], children: dependencies['mjml'].map(String).sort(), ending: false };
tags['mj-include'] = { attributes: ['css-inline', 'path', 'type'], children: [], ending: false };
tags['mj-selector'] = { attributes: ['path'], children: dependencies['mj-selector'].map(String), ending: false };
tags['mj-html-attribute'] = { attributes: ['name'], children: [], ending: true };
const out = {
  source: 'mjml@' + require('mjml/package.json').version + ' (MIT): mjml-core components, mjml-validator dependencies',
  global_attributes: ['css-class', 'mj-class'],  // validAttributes.js WHITELIST
  tags,
};
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
