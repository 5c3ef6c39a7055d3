// The model picker: a combobox over /api/models with each model's name, id, context and
// prices, recent models first, narrowed as the user types (every word must match the name or
// the id). Any model id typed in is taken as it is: the list helps, it does not limit.

const MAX_SHOWN = 200; // OpenRouter lists some 300 models: the first ones that match suffice

function perMillion(price) {
  const value = Number(price) * 1e6;
  if (!Number.isFinite(value)) return null;
  return value === 0 ? "free" : `$${value.toFixed(value < 1 ? 3 : 2)}/M`;
}

// "128k context · $0.150/M in, $0.600/M out"
export function describeModel(model) {
  const words = [];
  if (model.context_length) words.push(`${Math.round(model.context_length / 1000)}k context`);
  const prompt = perMillion(model.pricing?.prompt);
  const completion = perMillion(model.pricing?.completion);
  if (prompt && completion) words.push(prompt === completion ? prompt : `${prompt} in, ${completion} out`);
  return words.join(" · ");
}

function span(className, text) {
  const node = document.createElement("span");
  node.className = className;
  node.textContent = text;
  return node;
}

export class ModelPicker {
  // input: the combobox; list: its listbox; onPick(id): a model was chosen from the list.
  constructor(input, list, onPick) {
    this.input = input;
    this.list = list;
    this.onPick = onPick;
    this.entries = []; // [{id, model (or null), recent}] in the order shown when unfiltered
    this.shown = [];
    this.active = -1;
    this.narrow = false; // whether what is typed filters the list (not just the current model)
    input.addEventListener("focus", () => this.open(false));
    input.addEventListener("click", () => this.open(false));
    input.addEventListener("input", () => this.open(true));
    input.addEventListener("blur", () => this.close());
    input.addEventListener("keydown", (event) => this.onKey(event));
    // Chosen with the pointer without taking the focus from the box.
    list.addEventListener("mousedown", (event) => event.preventDefault());
    list.addEventListener("click", (event) => {
      const option = event.target.closest("[role=option]");
      if (option) this.choose(option.dataset.id);
    });
  }

  // models: from /api/models; recent: ids, most recent first.
  setModels(models, recent) {
    const byId = new Map(models.map((model) => [model.id, model]));
    this.entries = [
      ...recent.map((id) => ({ id, model: byId.get(id) ?? null, recent: true })),
      ...models.filter((model) => !recent.includes(model.id)).map((model) => ({ id: model.id, model, recent: false })),
    ];
    if (!this.list.hidden) this.render();
  }

  get isOpen() {
    return !this.list.hidden;
  }

  open(narrow) {
    this.narrow = narrow;
    this.list.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    this.render();
  }

  close() {
    this.list.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
    this.active = -1;
  }

  matching() {
    const words = this.narrow ? this.input.value.toLowerCase().split(/\s+/).filter(Boolean) : [];
    return this.entries.filter(({ id, model }) => {
      const text = `${id} ${model?.name ?? ""}`.toLowerCase();
      return words.every((word) => text.includes(word));
    });
  }

  render() {
    this.shown = this.matching().slice(0, MAX_SHOWN);
    this.active = -1;
    this.input.removeAttribute("aria-activedescendant");
    this.list.replaceChildren(
      ...this.shown.map(({ id, model, recent }, index) => {
        const option = document.createElement("li");
        option.id = `model-option-${index}`;
        option.setAttribute("role", "option");
        option.setAttribute("aria-selected", "false");
        option.dataset.id = id;
        const details = [id, model ? describeModel(model) : "", recent ? "recent" : ""];
        option.append(
          span("model-name", model?.name ?? id),
          span("model-details", ` ${details.filter(Boolean).join(" · ")}`),
        );
        return option;
      }),
    );
    if (!this.shown.length) this.close();
  }

  move(delta) {
    if (!this.isOpen) this.open(false);
    if (!this.shown.length) return;
    const options = this.list.children;
    options[this.active]?.setAttribute("aria-selected", "false");
    this.active = (this.active + delta + this.shown.length) % this.shown.length;
    const option = options[this.active];
    option.setAttribute("aria-selected", "true");
    option.scrollIntoView({ block: "nearest" });
    this.input.setAttribute("aria-activedescendant", option.id);
  }

  choose(id) {
    this.input.value = id;
    this.close();
    this.onPick(id);
  }

  onKey(event) {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      this.move(event.key === "ArrowDown" ? 1 : -1);
    } else if (event.key === "Enter" && this.isOpen && this.active >= 0) {
      event.preventDefault();
      this.choose(this.shown[this.active].id);
    } else if (event.key === "Escape" && this.isOpen) {
      event.stopPropagation();
      this.close();
    }
  }
}
