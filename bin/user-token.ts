// `npm run user-token -- <userId>`: a development user token (what the login service issues).
import { devUserTokenKey, DEV_USER_KEY_ID } from '../infra/keys.ts';
import { signUserToken } from '../api/auth/user-jwt.ts';

const userId = process.argv[2];
if (!userId) {
  console.error('usage: npm run user-token -- <userId>');
  process.exit(2);
}
console.log(signUserToken(devUserTokenKey(), DEV_USER_KEY_ID, userId, { ttlSec: 24 * 3600 }));
