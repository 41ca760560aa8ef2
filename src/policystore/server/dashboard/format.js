// How the dashboard shows values: units by field, floors as floors, money as account-currency notionals.

// Mode fields in display order: [field, kind, what it is].
export const FIELDS = [
  ["max_leverage", "lev", "highest leverage a position may use"],
  ["max_risk_pct_per_trade", "pct", "fraction of equity one trade may put at risk"],
  ["max_daily_drawdown", "pct", "fraction of equity the day may lose before trading halts"],
  ["max_positions", "int", "most positions open at once"],
  ["global_min_confidence", "floor", "lowest signal confidence that may open a trade (a floor)"],
  ["scaling_factor", "mult", "multiplier applied to every position size"],
  ["position_size_cap", "money", "largest notional of one position, in account currency"],
  ["enable_rl", "flag", "AI module"], ["enable_meta_strategy", "flag", "AI module"], ["enable_pal", "flag", "AI module"],
  ["enable_pba", "flag", "AI module"], ["enable_clm", "flag", "AI module"], ["enable_retraining", "flag", "AI module"],
  ["enable_dynamic_tpsl", "flag", "AI module"],
];

// A strategy's effective fields: [field, kind].
export const STRATEGY_FIELDS = [
  ["cooldown_seconds", "secs"], ["min_confidence", "floor"], ["max_leverage", "lev"],
  ["max_risk_pct_per_trade", "pct"], ["max_positions", "int"], ["scaling_factor", "mult"],
];

// An instrument's limits (instruments.<SYMBOL>.<field>): [field, kind, what it is].
export const INSTRUMENT_FIELDS = [
  ["max_order_notional", "money", "largest notional (quantity × price) of one order, in account currency"],
  ["max_order_quantity", "qty", "largest quantity of one order"],
  ["max_position_notional", "money", "largest notional held in the instrument after an order, in account currency"],
  ["price_collar", "pct", "an order further than this from the reference price is refused"],
];

// The firm-wide limits (trading.<field>): [field, kind, what it is].
export const TRADING_FIELDS = [
  ["max_orders_per_minute", "int", "most orders one executor sends in any 60 seconds (each executor counts its own)"],
  ["max_daily_loss", "money", "the day's loss, in account currency, that stops trading (trips the kill switch)"],
  ["max_gross_exposure", "money", "largest sum of the notionals of all open positions after an order"],
];

export const MONEY_UNIT = "acct ccy";
export const RISK_ORDER_NOTE =
  "Modes are ordered by risk: lowest max_leverage first, then lowest max_risk_pct_per_trade.";

const KINDS = Object.fromEntries([...FIELDS, ...STRATEGY_FIELDS, ...INSTRUMENT_FIELDS, ...TRADING_FIELDS]
  .map(([field, kind]) => [field, kind]));

export function fmt(value, kind) {
  if (value === null || value === undefined) return "–";
  switch (kind) {
    case "pct": return (value * 100).toFixed(value * 100 < 1 ? 2 : 1).replace(/\.0$/, "") + " %";
    case "lev": return Number(value).toFixed(1) + "×";
    case "mult": return "×" + Number(value).toFixed(2);
    case "floor": return "≥ " + Number(value).toFixed(2);
    case "money": return Number(value).toLocaleString("en-US", { maximumFractionDigits: 2 }) + " " + MONEY_UNIT;
    case "qty": return Number(value).toLocaleString("en-US", { maximumFractionDigits: 8 });
    case "secs": return Number(value).toLocaleString("en-US") + " s";
    case "flag": return value ? "on" : "off";
    default: return String(value);
  }
}

// The kind of a dot path's value, from its last part (risk.max_leverage, strategies.x.min_confidence...).
export function kindOf(path) {
  return KINDS[path.slice(path.lastIndexOf(".") + 1)] || "text";
}

export function fmtValue(path, value) {
  if (value !== null && typeof value === "object") return JSON.stringify(value);
  if (typeof value === "boolean") return value ? "on" : "off";
  return fmt(value, typeof value === "number" ? kindOf(path) : "text");
}

export function fmtTime(iso) {
  if (!iso) return "–";
  return new Date(iso).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

// Mode names from least to most risk (see RISK_ORDER_NOTE); the name breaks ties.
export function riskOrder(modes) {
  return Object.keys(modes).sort((a, b) =>
    modes[a].max_leverage - modes[b].max_leverage
    || modes[a].max_risk_pct_per_trade - modes[b].max_risk_pct_per_trade
    || a.localeCompare(b));
}
