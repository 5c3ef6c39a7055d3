// The shown conversation's settings: model (picked from /api/models with its name, context
// and price, recent ones first, or any id typed), temperature and system prompt, each stored
// with it.

import * as api from "./api.js";
import { ModelPicker } from "./model-picker.js";
import { setPrices } from "./usage.js";

const RECENT_KEY = "chatrelay.recentModels";
const RECENT_COUNT = 5;

function recentModels() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY));
    return Array.isArray(list) ? list.filter((id) => typeof id === "string") : [];
  } catch {
    return [];
  }
}

export function rememberModel(id) {
  const list = [id, ...recentModels().filter((other) => other !== id)].slice(0, RECENT_COUNT);
  localStorage.setItem(RECENT_KEY, JSON.stringify(list));
}

export class SettingsPanel {
  // ui: the panel's controls; onChange(conversation): a setting of it changed.
  constructor(ui, onChange) {
    this.ui = ui;
    this.onChange = onChange;
    this.conversation = null;
    this.models = [];
    this.picker = new ModelPicker(ui.model, ui.options, (id) => this.update({ model: id }));
    ui.model.addEventListener("input", () => {
      // An empty box is mid-edit, not a model: keep the last one until something is typed.
      if (ui.model.value.trim()) this.update({ model: ui.model.value.trim() });
    });
    ui.model.addEventListener("change", () => {
      ui.model.value = this.conversation.model;
    });
    ui.temperature.addEventListener("input", () => {
      this.update({ temperature: Number(ui.temperature.value) });
      ui.temperatureValue.value = this.conversation.temperature;
    });
    ui.systemPrompt.addEventListener("input", () => this.update({ systemPrompt: ui.systemPrompt.value }));
    ui.toggle.addEventListener("click", () => {
      const open = ui.panel.hidden;
      ui.panel.hidden = !open;
      ui.toggle.setAttribute("aria-expanded", String(open));
    });
  }

  update(changes) {
    Object.assign(this.conversation, changes);
    this.onChange(this.conversation);
  }

  show(conversation) {
    this.conversation = conversation;
    this.ui.model.value = conversation.model;
    this.ui.temperature.value = conversation.temperature;
    this.ui.temperatureValue.value = conversation.temperature;
    this.ui.systemPrompt.value = conversation.systemPrompt;
  }

  // Recent models first, then the server's list.
  renderOptions() {
    this.picker.setModels(this.models, recentModels());
  }

  async loadModels() {
    try {
      this.models = await api.listModels();
      setPrices(this.models);
      this.ui.status.textContent = `${this.models.length} models listed; any model id can be typed.`;
    } catch (error) {
      this.ui.status.textContent = `The models list did not load (${error.message}); type a model id.`;
    }
    this.renderOptions();
  }
}
