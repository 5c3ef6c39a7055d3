// Tokens and cost of an answer (from `done.usage`) and of a conversation. OpenRouter's usage
// carries `cost` in credits (US dollars); other servers' do not, and then the model's price
// from /api/models gives it, when known.

const prices = new Map(); // model id → {prompt, completion} in dollars per token

export function setPrices(models) {
  for (const model of models) {
    const prompt = Number(model.pricing?.prompt);
    const completion = Number(model.pricing?.completion);
    if (Number.isFinite(prompt) && Number.isFinite(completion)) {
      prices.set(model.id, { prompt, completion });
    }
  }
}

export function costOf(usage, model) {
  if (!usage) return null;
  if (typeof usage.cost === "number") return usage.cost;
  const price = prices.get(model);
  if (!price) return null;
  return (usage.prompt_tokens ?? 0) * price.prompt + (usage.completion_tokens ?? 0) * price.completion;
}

export function formatCost(dollars) {
  if (dollars === 0) return "$0";
  if (dollars < 0.01) return `$${dollars.toPrecision(2)}`;
  return `$${dollars.toFixed(2)}`;
}

const tokensOf = (usage) =>
  usage.total_tokens ?? (usage.prompt_tokens ?? 0) + (usage.completion_tokens ?? 0);

function describe(tokens, cost) {
  const words = [`${tokens.toLocaleString("en")} tokens`];
  if (cost !== null) words.push(formatCost(cost));
  return words.join(" · ");
}

export function describeUsage(usage, model) {
  if (!usage) return "";
  return describe(tokensOf(usage), costOf(usage, model));
}

export function describeConversation(conversation) {
  let tokens = 0;
  let cost = null;
  for (const message of conversation.messages) {
    if (!message.usage) continue;
    tokens += tokensOf(message.usage);
    const own = costOf(message.usage, message.model);
    if (own !== null) cost = (cost ?? 0) + own;
  }
  return tokens ? `This conversation: ${describe(tokens, cost)}` : "";
}
