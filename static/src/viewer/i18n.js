// Django's JavaScript catalogue (loaded before the bundle), with English fallbacks when it is absent.

export const gettext = window.gettext || ((text) => text);
export const ngettext = window.ngettext || ((singular, plural, n) => (n === 1 ? singular : plural));
export const interpolate =
  window.interpolate ||
  ((format, values, named) =>
    named
      ? format.replace(/%\((\w+)\)s/g, (match, key) => String(values[key]))
      : format.replace(/%s/g, () => String(values.shift())));

const lang = document.documentElement.lang || undefined;
const oneDecimal = new Intl.NumberFormat(lang, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const whole = new Intl.NumberFormat(lang, { maximumFractionDigits: 0, useGrouping: false });

/** A millimetre figure with one decimal and a true minus sign ("−55.0"). */
export function mm(value) {
  const rounded = Math.round(value * 10) / 10;
  return oneDecimal.format(rounded === 0 ? 0 : rounded).replace("-", "\u2212"); // never "−0.0"
}

export function integer(value) {
  const rounded = Math.round(value);
  return whole.format(rounded === 0 ? 0 : rounded).replace("-", "\u2212");
}
