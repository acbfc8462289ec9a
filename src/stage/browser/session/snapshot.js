// The charts page's state in one WebDriver round trip. arguments[0] is the page model
// (fixtures/pages/*.toml): every selector and text comes from there, none is written here.
const m = arguments[0]
const sel = m.selectors
const attr = m.attributes
const texts = m.texts
const norm = (s) => (s ?? '').replace(/\s+/g, ' ').trim()
const all = (css) => Array.from(document.querySelectorAll(css))
const first = (css) => document.querySelector(css)
const body = document.body ? document.body.innerText : ''
const byText = (css, text) => all(css).find((e) => norm(e.textContent) === text) ?? null
// The first line of the page's text that starts with `label` (e.g. "Showing …").
const line = (label) => body.split('\n').map(norm).find((l) => l.startsWith(label + ' ')) ?? null
// A Select trigger: its value slot (the whole text also holds the icon's "▼"), whether it shows
// the placeholder, and which list it has open.
const control = (css) => {
  const e = first(css)
  if (!e) return null
  const slot = e.querySelector(sel.select_value)
  return {
    tag: e.tagName,
    disabled: e.disabled === true,
    text: norm(e.textContent),
    slot: slot ? norm(slot.textContent) : null,
    placeholder: e.hasAttribute(attr.placeholder),
    controls: e.getAttribute(attr.controls),
  }
}

const price = first(sel.price_chart)
const signal = first(sel.signal_chart)
const lagLabel = byText(sel.lag_label, texts.lag_label)
const pill = lagLabel ? lagLabel.nextElementSibling : null
const refresh = byText(sel.button, texts.refresh)
// Only a direct child of the section around the price chart: the app shell has sections too.
const chartSection = price ? price.closest(sel.chart_section) : null
const banner = chartSection
  ? (Array.from(chartSection.children).find((c) => c.matches(sel.error_banner)) ?? null)
  : null
const heading = first(sel.heading)
const toggles = {}
for (const t of m.toggles) {
  const box = all(sel.checkbox).find((i) =>
    Array.from(i.labels ?? []).some((l) => norm(l.textContent) === t.name),
  )
  toggles[t.key] = box ? { checked: box.checked, disabled: box.disabled } : null
}
const shown = {}
for (const [key, text] of Object.entries(texts)) {
  if (!text.includes('{')) shown[key] = body.includes(text)
}
const options = Intl.DateTimeFormat().resolvedOptions()

return {
  path: location.pathname,
  hydrated: document.documentElement.getAttribute(attr.hydrated),
  heading: heading ? norm(heading.textContent) : null,
  shown,
  showing: line(texts.showing.split(' {')[0]),
  candles: price ? price.getAttribute(attr.candle_count) : null,
  overlays: price ? price.getAttribute(attr.overlay_count) : null,
  canvas: price ? price.querySelector('canvas') !== null : false,
  signals: signal ? signal.getAttribute(attr.signal_count) : null,
  lag: pill ? { text: norm(pill.textContent), class: pill.getAttribute('class') ?? '' } : null,
  latest_event: line(texts.latest_event),
  banner: banner ? norm(banner.textContent) : null,
  busy: refresh ? refresh.getAttribute(attr.busy) : null,
  symbol: control(sel.symbol),
  range: control(sel.range),
  resolution: control(sel.resolution),
  toggles,
  now_ms: Date.now(),
  time_zone: options.timeZone,
  tz_offset_min: new Date().getTimezoneOffset(),
  language: navigator.language,
  locale: options.locale,
}
