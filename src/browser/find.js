// Finds one element to click, by the page model's selectors: arguments[0] is the model,
// arguments[1] what to find ({kind, value}). Returns the element or null.
const m = arguments[0]
const want = arguments[1]
const norm = (s) => (s ?? '').replace(/\s+/g, ' ').trim()
const all = (css) => Array.from(document.querySelectorAll(css))
switch (want.kind) {
  case 'css':
    return document.querySelector(want.value)
  case 'option':
    return all(m.selectors.option).find((o) => norm(o.textContent) === want.value) ?? null
  case 'checkbox':
    return (
      all(m.selectors.checkbox).find((i) =>
        Array.from(i.labels ?? []).some((l) => norm(l.textContent) === want.value),
      ) ?? null
    )
  case 'button':
    return all(m.selectors.button).find((b) => norm(b.textContent) === want.value) ?? null
  default:
    throw new Error('unknown kind ' + want.kind)
}
