// The JavaScript clients against chatrelay's /v1: node clients.mjs BASE_URL CASE.
// Prints one JSON object: what the client made of the answer.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, streamText, tool } from "ai";
import OpenAI from "openai";
import { z } from "zod";

const [base, which] = process.argv.slice(2);
const model = "openai/gpt-4o-mini";

const cases = {
  // The openai npm package: client.responses.create, not streamed and streamed.
  async openai() {
    const client = new OpenAI({ baseURL: base, apiKey: "sk-unused", maxRetries: 0 });
    const whole = await client.responses.create({ model, input: "Hi" });
    const stream = await client.responses.create({ model, input: "Hi", stream: true });
    const types = [];
    let text = "";
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") text += event.delta;
    }
    return { whole: whole.output_text, status: whole.status, streamed: text, types };
  },
  // The Vercel AI SDK's default provider call (the Responses API), a tool run between steps.
  async vercel() {
    const openai = createOpenAI({ baseURL: base, apiKey: "sk-unused" });
    const result = streamText({
      model: openai(model),
      prompt: "Weather in Paris?",
      tools: {
        get_weather: tool({
          description: "Weather in a city",
          inputSchema: z.object({ city: z.string() }),
          execute: async ({ city }) => `22C in ${city}`,
        }),
      },
      stopWhen: stepCountIs(3),
    });
    const calls = [];
    const errors = [];
    for await (const part of result.fullStream) {
      if (part.type === "tool-call") calls.push({ name: part.toolName, input: part.input });
      if (part.type === "error") errors.push(String(part.error));
    }
    return { text: await result.text, calls, errors, usage: await result.totalUsage };
  },
  // Two turns: the SDK hands the first answer back (by item_reference, as it stores by default).
  async vercelTurns() {
    const openai = createOpenAI({ baseURL: base, apiKey: "sk-unused" });
    const question = { role: "user", content: "Capital of France?" };
    const first = await generateText({ model: openai(model), messages: [question] });
    const again = [question, ...first.response.messages, { role: "user", content: "Sure?" }];
    const second = await generateText({ model: openai(model), messages: again });
    return { first: first.text, second: second.text };
  },
};

console.log(JSON.stringify(await cases[which]()));
