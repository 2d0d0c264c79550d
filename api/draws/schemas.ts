import { errorResponse } from '../errors.ts';

const id = (description: string) => ({ type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$', description }) as const;

export const drawBody = {
  type: 'object',
  additionalProperties: false,
  required: ['activityId', 'sceneId', 'userId', 'drawId'],
  properties: {
    activityId: id('The parent activity; the ledger picks the child live now.'),
    sceneId: id('The scene drawn in.'),
    userId: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.:-]+$', description: 'Who draws.' },
    drawId: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.:-]+$', description: 'Upstream id of the draw: a retry with it gets the same draw.' },
    platform: { type: 'string', enum: ['ios', 'android'], description: "The user's platform; needed in coupon scenes (the gift pack is granted for it)." },
  },
} as const;

const drawAnswer = {
  type: 'object',
  required: ['drawId', 'activityId', 'childId', 'stage', 'sceneId', 'userId', 'outcome', 'configVersion', 'drawnAt'],
  properties: {
    drawId: { type: 'string' },
    activityId: { type: 'string' },
    childId: { type: 'string' },
    stage: { type: 'string' },
    sceneId: { type: 'string' },
    userId: { type: 'string' },
    outcome: { type: 'string', enum: ['won', 'no_win'] },
    reason: { type: 'string', enum: ['no_win_drawn', 'pool_empty', 'win_limit', 'pass_through'] },
    configVersion: { type: 'integer' },
    drawnAt: { type: 'string', format: 'date-time' },
    prize: {
      type: 'object',
      properties: {
        prizeId: { type: 'string' }, name: { type: 'string' }, awardType: { type: 'string' }, statementText: { type: 'string' },
        amount: { type: 'integer' }, currency: { type: 'string' }, itemId: { type: 'string' }, quantity: { type: 'integer' },
      },
    },
    token: { type: 'object', properties: { tokenId: { type: 'string' }, token: { type: 'string' } } },
    goodsGrantId: { type: 'string' },
    giftPackGrantId: { type: 'string', description: 'A coupon win: the gift pack granted (the wallet lists it).' },
  },
} as const;

export const drawRouteSchema = {
  body: drawBody,
  response: { 200: drawAnswer, 201: drawAnswer, '4xx': errorResponse, '5xx': errorResponse },
} as const;
