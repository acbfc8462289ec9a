// Finds one element to click, by the page model's selectors: arguments[0] is the model,
// arguments[1] what to find ({kind, value, trigger}). Returns the element or null; kind
// 'options' returns the labels the open list offers (for a message).
const m = arguments[0]
const want = arguments[1]
const norm = (s) => (s ?? '').replace(/\s+/g, ' ').trim()
const all = (css, root = document) => Array.from(root.querySelectorAll(css))
const visible = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden'
// The list a Select trigger has open: the one its aria-controls names, else the only visible
// listbox. Closed lists stay in the DOM on the real page, so a page-wide look-up would match
// their options too (jangar.md §6.3).
const openList = (triggerCss) => {
  const trigger = triggerCss ? document.querySelector(triggerCss) : null
  const id = trigger ? trigger.getAttribute(m.attributes.controls) : null
  const named = id ? document.getElementById(id) : null
  if (named && visible(named)) {
    return named.matches(m.selectors.listbox) ? named : (named.querySelector(m.selectors.listbox) ?? named)
  }
  const shown = all(m.selectors.listbox).filter(visible)
  return shown.length === 1 ? shown[0] : null
}
const options = (triggerCss) => {
  const list = openList(triggerCss)
  return list ? all(m.selectors.option, list) : []
}
switch (want.kind) {
  case 'css':
    return document.querySelector(want.value)
  case 'option':
    return options(want.trigger).find((o) => norm(o.textContent) === want.value) ?? null
  case 'options':
    return options(want.trigger).map((o) => norm(o.textContent))
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
