/**
 * Demo data for `npm start`: 20 deterministic customer-support calls and the built-in
 * metric definitions to run on them. Offsets come from word counts (~150 wpm) and fixed
 * pauses, so the numbers the metrics produce are stable from run to run.
 */
import type { CreateCallInput } from "../../shared/schemas/call.ts";

type Line = [speaker: "A" | "C", text: string, options?: { overlapMs?: number; pauseMs?: number }];

interface Script {
  agentId: string;
  company: string;
  environmentId: "production" | "staging";
  direction: "INBOUND" | "OUTBOUND";
  channel: "PHONE" | "WEB";
  properties: Record<string, string>;
  lines: Line[];
}

const MS_PER_WORD = 400; // ~150 words per minute
const DEFAULT_PAUSE_MS = [450, 700, 1200, 900, 300];

const card = (
  lines: Line[],
  properties: Record<string, string> = {},
  environmentId: Script["environmentId"] = "production",
): Script => ({
  agentId: "agent-card-support",
  company: "Northwind Bank",
  environmentId,
  direction: "INBOUND",
  channel: "PHONE",
  properties: { region: "EU", campaign: "card-services", language: "en", ...properties },
  lines,
});

const billing = (
  lines: Line[],
  properties: Record<string, string> = {},
  environmentId: Script["environmentId"] = "production",
): Script => ({
  agentId: "agent-billing",
  company: "Acme Telecom",
  environmentId,
  direction: "INBOUND",
  channel: "PHONE",
  properties: { region: "US", campaign: "billing", language: "en", ...properties },
  lines,
});

const scripts: Script[] = [
  card([
    ["A", "Thank you for calling Northwind Bank card services, my name is Ava. How can I help you today?"],
    ["C", "Hi, I think my card was stolen. I can't find it anywhere and I see a charge I don't recognise."],
    [
      "A",
      "I'm sorry to hear that. Before we go on I need to verify your identity. Can you confirm your date of birth?",
    ],
    ["C", "Sure, it's the fourth of March, nineteen eighty seven."],
    ["A", "Thank you. And the last four digits of the card, please?"],
    ["C", "Four two one nine."],
    [
      "A",
      "Thanks, you're verified. I can see a charge of eighty nine euros at an electronics store this morning. Was that you?",
    ],
    ["C", "No, definitely not."],
    [
      "A",
      "I've blocked the card now so no further payments can go through, and I've opened a dispute for that charge.",
    ],
    ["C", "Okay, great. Will I get the money back?"],
    [
      "A",
      "Yes, you'll get a provisional refund within five working days while we investigate. A new card will arrive in three to five days.",
    ],
    ["C", "Perfect, thank you so much."],
    ["A", "You're welcome. Is there anything else I can help with?"],
    ["C", "No, that's all. Bye."],
  ]),
  card([
    ["A", "Northwind Bank, this is Leo speaking."],
    ["C", "Hello, I want to raise my credit limit please."],
    ["A", "Sure, what limit would you like?", { pauseMs: 2400 }],
    ["C", "Five thousand instead of three."],
    ["A", "I've submitted that request. You'll get an answer by email within two days."],
    ["C", "Don't you need to check who I am?", { pauseMs: 1500 }],
    ["A", "Oh, the request goes through review anyway. Anything else?"],
    ["C", "No. Thanks."],
  ]),
  card(
    [
      ["A", "Good afternoon, Northwind Bank card services, how may I help?"],
      ["C", "My card keeps getting declined online but works in shops."],
      [
        "A",
        "I can help with that. For security, could you give me your date of birth and the last four digits of the card?",
      ],
      ["C", "Twelfth of July ninety one, and the card ends in eight eight zero two."],
      [
        "A",
        "Thank you, that matches. Online payments are switched off on this card. Would you like me to enable them?",
      ],
      ["C", "Yes please, I had no idea that was a setting."],
      ["A", "Done. You can also manage this yourself in the app under card controls."],
      ["C", "Great, I'll try again now."],
      ["A", "Let me know if anything else comes up. Have a nice day."],
    ],
    { region: "US" },
  ),
  card([
    ["A", "Northwind Bank, you're speaking with Mia."],
    ["C", "This is ridiculous. This is the third time I'm calling about the same annual fee!"],
    ["A", "I'm really sorry about that. Let me—", { pauseMs: 200 }],
    ["C", "I was promised it would be waived and it's still on my statement!", { overlapMs: 600 }],
    ["A", "I understand, and I apologize. Can I verify your identity first with your date of birth?"],
    ["C", "Second of November, nineteen seventy five."],
    ["A", "Thank you. I can see the note from your last call. The waiver was never applied. I'm applying it now."],
    ["C", "Finally. Will it show on the next statement?"],
    ["A", "Yes, the refund of the ninety five euro fee will show within two days. Again, sorry for the trouble."],
    ["C", "Okay. Thanks for actually fixing it."],
  ]),
  card(
    [
      ["A", "Northwind Bank card services, my name is Ava."],
      ["C", "I need to speak to someone about fraud on my business account, it's urgent."],
      ["A", "Of course. Can you confirm your date of birth so I can verify you?"],
      ["C", "Twenty first of January, eighty two."],
      [
        "A",
        "Thank you. Business account fraud is handled by a specialist team. I'm transferring you to a human specialist now.",
      ],
      ["C", "Thank you, please hurry."],
      ["A", "Transferring now, please hold."],
    ],
    { escalated: "true" },
  ),
  card(
    [
      ["A", "Hi, thanks for contacting Northwind Bank. How can I help?"],
      ["C", "I'm travelling to Japan next week. Do I need to tell you?"],
      [
        "A",
        "It's good that you asked. You don't need to notify us, but make sure your phone number is up to date for fraud alerts.",
      ],
      ["C", "It is. Are there foreign transaction fees?"],
      ["A", "Your card has no foreign transaction fees. Cash withdrawals abroad cost two euros each."],
      ["C", "Great, that's all I needed."],
    ],
    {},
    "staging",
  ),
  card([
    ["A", "Northwind Bank, Leo speaking."],
    ["C", "Hi, I'd like to cancel my credit card."],
    ["A", "I can help with that. First, please confirm the last four digits of the card and your date of birth."],
    ["C", "Six six one zero, and fifth of May ninety."],
    ["A", "Thank you. May I ask why you want to cancel?"],
    ["C", "I don't use it anymore and there's a yearly fee."],
    ["A", "I understand. I could switch you to our free card instead, with the same number. Would that help?"],
    ["C", "Oh, actually yes, that sounds better."],
    ["A", "Done, you're now on the free card. No fee from next year."],
    ["C", "Thanks, that's great."],
  ]),
  card(
    [
      ["A", "Welcome to Northwind Bank chat support."],
      ["C", "Where can I find my PIN?"],
      ["A", "You can view your PIN in the app under card details after logging in."],
      ["C", "Found it, thanks."],
    ],
    { channel: "chat" },
  ),
  card([
    ["A", "Northwind Bank card services, this is Mia. How can I help?"],
    ["C", "I was charged twice for the same hotel booking."],
    ["A", "Sorry about that. Let me verify you quickly, can I have your date of birth?"],
    ["C", "Ninth of September, eighty four."],
    ["A", "Thanks. I see two charges of two hundred and ten euros from the same hotel, a minute apart."],
    ["C", "Yes, exactly, I only stayed once."],
    [
      "A",
      "One of them is still pending and should drop off by itself within three days. If not, call us and we'll dispute it.",
    ],
    ["C", "Can't you dispute it now?", { overlapMs: 300 }],
    ["A", "Pending charges can't be disputed yet, sorry. I've added a note so the next agent sees this."],
    ["C", "Okay, fine."],
  ]),
  card([
    ["A", "Northwind Bank, you're through to Ava."],
    ["C", "Hi, I got a letter saying my card expires. Do I need to do anything?"],
    ["A", "No, a new card is sent automatically a month before. Is your address still the same?"],
    ["C", "Yes, same address."],
    ["A", "Then it's on its way. Activate it in the app when it arrives."],
    ["C", "Perfect, bye."],
  ]),
  billing([
    ["A", "Thanks for calling Acme Telecom billing, this is Sam. How can I help?"],
    ["C", "My bill this month is forty dollars higher than usual."],
    ["A", "Let me look into that. Can you confirm the account holder's date of birth?"],
    ["C", "June third, nineteen seventy nine."],
    ["A", "Thank you. I see roaming charges from a trip to Canada. Your plan doesn't include roaming."],
    ["C", "Nobody told me that! I thought it was included."],
    ["A", "I'm sorry for the confusion. As a one-time courtesy I can refund half of the roaming charges."],
    ["C", "Half? Can't you refund all of it?", { overlapMs: 400 }],
    ["A", "Half is the most I can do, but I can add a travel pass for future trips at five dollars a day."],
    ["C", "Fine, add the travel pass."],
    ["A", "Done. The twenty dollar refund will appear on your next bill."],
  ]),
  billing([
    ["A", "Acme Telecom, Jordan speaking."],
    ["C", "I want to cancel my contract. I'm moving abroad."],
    ["A", "Sorry to see you go. Can I verify the account with the last four digits of the card on file?"],
    ["C", "Three one four one."],
    [
      "A",
      "Thanks. Moving abroad qualifies for early cancellation without a fee if you send proof of your new address.",
    ],
    ["C", "Great, where do I send it?"],
    ["A", "Upload it in the app under account, documents. Your service will end on the date you choose."],
    ["C", "The end of the month, please."],
    ["A", "Noted. You'll receive a confirmation email today."],
  ]),
  billing(
    [
      ["A", "Acme Telecom billing, Sam here."],
      ["C", "Hi. Why was I charged a late fee? I paid on time!"],
      ["A", "Let me check. Your payment arrived two days after the due date."],
      ["C", "Because your website was down when I tried to pay!", { overlapMs: 500 }],
      ["A", "I apologize, there was an outage that week. I'll remove the late fee."],
      ["C", "Thank you."],
      ["A", "Would you like to set up autopay so this can't happen again?"],
      ["C", "Yes, let's do that."],
      ["A", "Autopay is set for the due date each month. Anything else?"],
      ["C", "No, that's it."],
    ],
    { region: "EU" },
  ),
  billing(
    [
      ["A", "Hello, this is Acme Telecom calling about a special offer on fiber internet. Is now a good time?"],
      ["C", "Uh, I guess, what is it?"],
      [
        "A",
        "We can upgrade you to one gigabit fiber for ten dollars more per month, with the first three months free.",
      ],
      ["C", "What's the contract length?"],
      ["A", "Twelve months, and you can cancel in the first thirty days without a fee."],
      ["C", "Let me think about it. Can you send me the details?"],
      ["A", "Sure, I'll email the offer now. It's valid until the end of the month."],
    ],
    { campaign: "fiber-upsell" },
  ),
  billing([
    ["A", "Acme Telecom, you're speaking with Jordan."],
    ["C", "I keep getting charged for a streaming add-on I never ordered!"],
    ["A", "I'm sorry about that. What's the account holder's date of birth, please?"],
    ["C", "Twenty second of August, sixty eight."],
    ["A", "Thank you. The add-on was activated from a TV box four months ago."],
    ["C", "That must have been my grandson. I want that money back.", { overlapMs: 250 }],
    ["A", "I've removed the add-on and I can refund the last two months. Would you like a PIN on purchases too?"],
    ["C", "Yes, definitely."],
    ["A", "Done. The refund of twenty six dollars will show on your next bill."],
  ]),
  billing(
    [
      ["A", "Acme Telecom billing, this is Sam."],
      ["C", "Can I change my billing date to the fifteenth?"],
      ["A", "Sure, I'll just need your date of birth to verify."],
      ["C", "April first, nineteen ninety five."],
      ["A", "Thanks. Changed. Your next bill will be prorated to cover the extra days."],
      ["C", "Okay, thanks."],
    ],
    {},
    "staging",
  ),
  billing([
    ["A", "Acme Telecom, Jordan here. How can I help?"],
    ["C", "My internet has been down for three days and I want compensation."],
    ["A", "I'm very sorry. I can see the outage in your area. It was fixed this morning."],
    ["C", "Three days without internet. I work from home!", { overlapMs: 700 }],
    [
      "A",
      "I completely understand. You're entitled to a credit for the days without service, and I'll add a goodwill credit too.",
    ],
    ["C", "How much in total?"],
    ["A", "Fifteen dollars for the outage plus ten as goodwill. It will show on your next bill."],
    ["C", "Alright. Thank you."],
  ]),
  billing(
    [
      ["A", "Hi, thanks for chatting with Acme Telecom."],
      ["C", "Is there a cheaper plan than mine?"],
      [
        "A",
        "You're on the unlimited plan at sixty five dollars. The twenty gigabyte plan is forty five and you've used under ten each month.",
      ],
      ["C", "Switch me, please."],
      ["A", "Switched from your next billing cycle."],
    ],
    { channel: "chat" },
  ),
  billing([
    ["A", "Acme Telecom, Sam speaking."],
    ["C", "Hello, I'm calling about a refund you promised last week. I still don't see it."],
    ["A", "Let me check the account. Can you verify the last four digits of your card?"],
    ["C", "Nine nine two seven."],
    ["A", "Thanks. The refund was approved and sent yesterday. Banks usually take three to five days to show it."],
    ["C", "Okay, I'll wait then. Sorry for calling again."],
    ["A", "No need to apologize. Have a good day."],
  ]),
  // A call whose recording failed: the transcript is empty (metrics answer DATA_MISSING).
  billing([], { recording: "failed" }),
];

function toTranscript(lines: Line[]): CreateCallInput["transcript"] {
  const transcript: CreateCallInput["transcript"] = [];
  let cursor = 0;
  for (const [index, [speaker, text, options]] of lines.entries()) {
    const words = text.split(/\s+/).filter(Boolean).length;
    const start =
      index === 0
        ? 0
        : options?.overlapMs
          ? Math.max(0, cursor - options.overlapMs)
          : cursor + (options?.pauseMs ?? DEFAULT_PAUSE_MS[index % DEFAULT_PAUSE_MS.length] ?? 500);
    const end = start + words * MS_PER_WORD;
    transcript.push({ role: speaker === "A" ? "AGENT" : "CUSTOMER", text, startOffsetMs: start, endOffsetMs: end });
    cursor = Math.max(cursor, end);
  }
  return transcript;
}

export function demoCalls(): CreateCallInput[] {
  return scripts.map((script, index) => {
    const transcript = toTranscript(script.lines);
    const startedAt = Date.UTC(2026, 10, 1 + index, 8 + (index % 9), (index * 17) % 60);
    const durationMs = (transcript.at(-1)?.endOffsetMs ?? 30_000) + 1_500;
    const { channel, ...properties } = script.properties;
    return {
      externalId: `demo-call-${String(index + 1).padStart(2, "0")}`,
      agentId: script.agentId,
      environmentId: script.environmentId,
      callDirection: script.properties.campaign === "fiber-upsell" ? "OUTBOUND" : script.direction,
      interfaceType: channel === "chat" ? "WEB" : script.channel,
      startedAt: new Date(startedAt).toISOString(),
      endedAt: new Date(startedAt + durationMs).toISOString(),
      durationMs,
      properties: { ...properties, company: script.company },
      transcript,
    };
  });
}

export function demoMetricDefinitions() {
  return [
    {
      slug: "call-duration",
      name: "Call duration",
      description: "Length of the call.",
      calculationType: "BUILT_IN",
      outputType: "NUMERIC",
      builtIn: { kind: "CALL_DURATION" },
      unit: { name: "milliseconds", symbol: "ms" },
    },
    {
      slug: "agent-talk-ratio",
      name: "Agent talk ratio",
      description: "Share of speaking time taken by the agent.",
      calculationType: "BUILT_IN",
      outputType: "NUMERIC",
      builtIn: { kind: "AGENT_TALK_RATIO" },
      unit: { name: "percent", symbol: "%" },
    },
    {
      slug: "turn-count",
      name: "Turn count",
      description: "Number of speaker turns.",
      calculationType: "BUILT_IN",
      outputType: "COUNT",
      builtIn: { kind: "TURN_COUNT" },
    },
    {
      slug: "agent-response-latency-p95",
      name: "Agent response latency (p95)",
      description: "95th percentile of the time the agent takes to answer the customer.",
      calculationType: "BUILT_IN",
      outputType: "NUMERIC",
      builtIn: { kind: "AGENT_RESPONSE_LATENCY_P95" },
      unit: { name: "milliseconds", symbol: "ms" },
      // Latency-like: the analytics API reports the p95 over calls, not the average.
      histogram: true,
    },
    {
      slug: "interruptions",
      name: "Interruptions",
      description: "Turns that started while the other speaker was still talking.",
      calculationType: "BUILT_IN",
      outputType: "COUNT",
      builtIn: { kind: "INTERRUPTION_COUNT" },
    },
    {
      slug: "agent-wpm",
      name: "Agent words per minute",
      description: "Speaking rate of the agent.",
      calculationType: "BUILT_IN",
      outputType: "NUMERIC",
      builtIn: { kind: "WORDS_PER_MINUTE", role: "AGENT" },
      unit: { name: "words per minute", symbol: "wpm" },
    },
    {
      slug: "apology-count",
      name: "Apologies",
      description: "How often the agent apologizes.",
      calculationType: "BUILT_IN",
      outputType: "COUNT",
      builtIn: { kind: "KEYWORD_MATCH_COUNT", keywords: ["sorry", "apologize", "apologise"], role: "AGENT" },
    },
    ...demoLlmMetricDefinitions(),
  ];
}

/**
 * LLM-judged demo metrics, one per output type. The quoted phrase in each prompt is a
 * useful hint for a real model and the keyword the fake Anthropic server judges by.
 */
function demoLlmMetricDefinitions() {
  const judged = { calculationType: "LLM_JUDGE", description: "" } as const;
  return [
    {
      ...judged,
      slug: "identity-verified",
      name: "Identity verified",
      outputType: "BOOLEAN",
      llmPrompt:
        'Did the agent verify the caller\'s identity before discussing the account, e.g. by asking for the "date of birth"?',
      booleanTrueLabel: "verified",
      booleanFalseLabel: "not verified",
    },
    {
      ...judged,
      slug: "empathy",
      name: "Empathy",
      outputType: "SCALE",
      llmPrompt:
        'How empathetic was the agent? Apologies such as "sorry" for the customer\'s trouble count in its favour.',
      scaleMin: 1,
      scaleMax: 5,
      scaleLabels: { "1": "cold or dismissive", "3": "polite", "5": "warm and attentive" },
    },
    {
      ...judged,
      slug: "call-reason",
      name: "Call reason",
      outputType: "CLASSIFICATION",
      llmPrompt: "Why did the customer get in touch?",
      classificationOptions: ["card", "billing", "refund", "cancel", "other"],
      maxClassifications: 2,
    },
    {
      ...judged,
      slug: "refund-mentions",
      name: "Refund mentions",
      outputType: "COUNT",
      llmPrompt: 'In how many turns is a "refund" discussed?',
    },
    {
      ...judged,
      slug: "first-apology",
      name: "First apology",
      outputType: "OFFSET",
      llmPrompt: 'Point at the first segment where the agent apologizes (says "sorry").',
    },
    {
      ...judged,
      slug: "refund-summary",
      name: "Refund summary",
      outputType: "TEXT",
      llmPrompt:
        'Only if the transcript mentions "refund": summarize in one sentence what the agent said about the "refund".',
    },
  ];
}
